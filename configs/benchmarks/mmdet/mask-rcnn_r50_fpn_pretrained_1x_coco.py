# Mask R-CNN, ResNet-50 FPN, COCO 1x (mmdet's mask-rcnn_r50_fpn_1x_coco: 12 epochs, 8 GPUs x 2 images, lr 0.02) with
# the backbone of a multisiam_mm pretraining run, fine-tuned the way MoCo / mmselfsup fine-tune self-supervised
# backbones: SyncBN in the backbone (trained: norm_eval=False, no frozen stages), FPN and RoI heads (the box head
# becomes 4conv1fc with SyncBN, as in MoCo's detectron2 configs).
# Weights: init_cfg=None (no non-strict Pretrained init); StrictBackboneLoadHook loads `backbone_checkpoint`
# (tools/extract_backbone.py) with zero missing / unexpected keys or fails naming them.
#   python tools/train.py configs/benchmarks/mmdet/mask-rcnn_r50_fpn_pretrained_1x_coco.py \
#       --cfg-options backbone_checkpoint=work_dirs/backbone.pth
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['multisiam_mm'], allow_failed_imports=False)
backbone_checkpoint = 'work_dirs/backbone.pth'  # override: --cfg-options backbone_checkpoint=PATH

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(frozen_stages=-1, norm_cfg=norm_cfg, norm_eval=False, init_cfg=None),
    neck=dict(norm_cfg=norm_cfg),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256, norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))
custom_hooks = [dict(type='StrictBackboneLoadHook')]
