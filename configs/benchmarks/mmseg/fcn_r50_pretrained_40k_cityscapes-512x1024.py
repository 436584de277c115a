# FCN (ResNet-50, output stride 8) on Cityscapes, 512x1024 crops, 40k iterations: mmseg's common
# fcn_r50-d8_4xb2-40k_cityscapes-512x1024 protocol (4 GPUs x 2 images, SGD lr 0.01, poly, SyncBN, auxiliary head),
# with the backbone of a multisiam_mm pretraining run.
#
# Backbone: type='ResNet' (plain 7x7 stem), the architecture our checkpoints have. mmseg's base uses the deep-stem
# ResNetV1c, into which an mmpretrain ResNet checkpoint loads only partly, with a log warning and no error.
# Weights: init_cfg=None and model.pretrained=None (no non-strict Pretrained init); StrictBackboneLoadHook loads
# `backbone_checkpoint` (made by tools/extract_backbone.py) with zero missing / unexpected keys or fails naming them.
#   python tools/train.py configs/benchmarks/mmseg/fcn_r50_pretrained_40k_cityscapes-512x1024.py \
#       --cfg-options backbone_checkpoint=work_dirs/backbone.pth
_base_ = ['mmseg::fcn/fcn_r50-d8_4xb2-40k_cityscapes-512x1024.py']

custom_imports = dict(imports=['multisiam_mm'], allow_failed_imports=False)
backbone_checkpoint = 'work_dirs/backbone.pth'  # override: --cfg-options backbone_checkpoint=PATH

model = dict(
    pretrained=None,
    backbone=dict(type='ResNet', init_cfg=None),
)
custom_hooks = [dict(type='StrictBackboneLoadHook')]
