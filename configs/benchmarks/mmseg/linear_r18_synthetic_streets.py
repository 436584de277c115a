# Linear probe on the synthetic street scenes (docs/probes.md): the ResNet-18 of fcn_r18_synthetic_streets.py frozen
# entirely (frozen_stages=4: stem and the four stages; norm_eval: BatchNorm statistics fixed) under a 1x1 convolution
# (FCNHead with num_convs=0, no dropout) on its output-stride-8 map. Only the 1x1 convolution trains, so the mIoU
# measures how linearly separable the classes are in the pretrained features.
#   python tools/probe_segmentation.py --mode linear --checkpoint CKPT --data-root data/synthetic_streets
_base_ = ['./fcn_r18_synthetic_streets.py']

model = dict(
    backbone=dict(frozen_stages=4, norm_eval=True),
    decode_head=dict(channels=512, num_convs=0, concat_input=False, dropout_ratio=0.0))
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.0))
