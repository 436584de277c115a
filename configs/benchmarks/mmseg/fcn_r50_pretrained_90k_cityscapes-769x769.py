# The MultiSiam paper's Cityscapes segmentation protocol, which follows MoCo (He et al. 2020, appendix A.6):
# "FCN-16s": the convolutional layers of R50 with the 3x3 convs of conv5 (res5) at dilation 2, stride 1 (output
# stride 16), then two extra 3x3 convs of 256 channels with BN + ReLU and dilation 6, then a 1x1 per-pixel
# classifier; SyncBN; 769x769 crops with random scaling 0.5-2.0 and flips; batch 16, lr 0.01, 90k iterations;
# single-scale inference.
#
# Our reading in mmseg terms (based on mmseg's fcn-d6_r50-d16_4xb2-40k_cityscapes-769x769, the same FCN-16s /
# dilation-6 design):
# - backbone: plain ResNet-50 (type='ResNet', our checkpoints' architecture; not mmseg's deep-stem ResNetV1c),
#   strides (1, 2, 2, 1) and dilations (1, 1, 1, 2): output stride 16; SyncBN, norm_eval=False.
# - decode head: FCNHead on the stride-16 res5 map, num_convs=2, channels=256, dilation=6, no concat of the
#   input (MoCo: two convs, then the classifier), dropout 0.1 as in mmseg; no auxiliary head (MoCo has none).
# - data: mmseg's cityscapes_769x769 pipeline (resize to 2049x1025 x [0.5, 2.0], 769 crop, flip, photometric
#   distortion); 8 GPUs x 2 images = 16 (lr 0.01 is for 16; mmseg's poly schedule with eta_min 1e-4).
# - 90k iterations, validation every 10k; test in sliding 769 windows, stride 513 (mmseg's 769 setting).
# Weights: StrictBackboneLoadHook loads `backbone_checkpoint` strictly (see the 40k config).
_base_ = ['mmseg::fcn/fcn-d6_r50-d16_4xb2-40k_cityscapes-769x769.py']

custom_imports = dict(imports=['multisiam_mm'], allow_failed_imports=False)
backbone_checkpoint = 'work_dirs/backbone.pth'  # override: --cfg-options backbone_checkpoint=PATH

max_iters = 90000
model = dict(
    pretrained=None,
    backbone=dict(type='ResNet', init_cfg=None),
    decode_head=dict(channels=256, concat_input=False),
    auxiliary_head=None,
)
train_dataloader = dict(batch_size=2)  # x 8 GPUs = 16
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10000)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=10000))
custom_hooks = [dict(type='StrictBackboneLoadHook')]
