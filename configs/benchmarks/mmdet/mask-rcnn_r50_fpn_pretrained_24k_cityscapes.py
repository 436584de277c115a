# Mask R-CNN, ResNet-50 FPN on Cityscapes instance segmentation, the protocol of MoCo (appendix A) and of the
# MultiSiam paper: detectron2's Cityscapes/mask_rcnn_R_50_FPN schedule, i.e. 24k iterations, batch 8 (8 GPUs x 1),
# lr 0.01 with a 500-iteration warm-up and x0.1 at 18k, train shorter side 800-1024, test 1024 (mmdet's
# cityscapes_instance pipeline), SyncBN in backbone, FPN and heads (as the COCO config next to this one).
# Unlike mmdet's mask-rcnn_r50_fpn_1x_cityscapes this does NOT start from a COCO-trained detector (load_from=None):
# only the backbone comes from pretraining, loaded strictly by StrictBackboneLoadHook from `backbone_checkpoint`.
_base_ = ['mmdet::cityscapes/mask-rcnn_r50_fpn_1x_cityscapes.py']

custom_imports = dict(imports=['multisiam_mm'], allow_failed_imports=False)
backbone_checkpoint = 'work_dirs/backbone.pth'  # override: --cfg-options backbone_checkpoint=PATH
load_from = None

max_iters = 24000
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(frozen_stages=-1, norm_cfg=norm_cfg, norm_eval=False, init_cfg=None),
    neck=dict(norm_cfg=norm_cfg),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256, norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))
train_dataloader = dict(batch_size=1, sampler=dict(type='InfiniteSampler', shuffle=True))  # x 8 GPUs = 8
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[18000], gamma=0.1),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=4000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=4000), logger=dict(log_metric_by_epoch=False))
log_processor = dict(by_epoch=False)
custom_hooks = [dict(type='StrictBackboneLoadHook')]
