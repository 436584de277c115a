# Quality benchmark, DenseSiam arm: configs/densesiam/densesiam_r50_8xb32-coslr-200e_waymo.py (PixSim 7 x 7,
# RegionSim from half-way, global SimSiam branch, λ1 = 1, λ2 = 0.1, SimSiam's augmentations and IoU > 0.01 pairs)
# shrunk to ResNet-18 / 128 px / batch 16 (_base_/cpu_scale.py). Heads keep the paper's 512 width; the global
# projector is 512 wide (SimSiam's 2048 is for ResNet-50). SGD, lr 0.05 x 16 / 256, predictors at a fixed lr.
_base_ = ['../../densesiam/densesiam_r50_8xb32-coslr-200e_waymo.py', '_base_/cpu_scale.py']
lr = 0.05 * 16 / 256
model = dict(
    backbone=dict(depth=18, norm_cfg=dict(type='BN')),
    neck=dict(in_channels=512, hid_channels=512, out_channels=512),
    head=dict(predictor=dict(in_channels=512, hid_channels=128, out_channels=512)),
    pix_head=dict(in_channels=512),
    region_head=dict(in_channels=512),
)
train_dataloader = dict(
    batch_size={{_base_.batch_size}}, num_workers=2, persistent_workers=True, drop_last=True,
    sampler=dict(type='InfiniteSampler', shuffle=True), collate_fn=dict(type='default_collate'),
    dataset=dict(type='UnlabeledImageDataset', data_root='', ann_file='data/quality/pretrain.txt', pipeline=[
    dict(type='RobustLoadImage'),
    dict(type='IoUPairCrop', size={{_base_.crop_size}}, scale=(0.2, 1.0), ratio=(3. / 4., 4. / 3.), iou_thr=0.01,
         interpolation='bilinear', flip_prob=0.5),
    dict(type='PairPhotometric', view_pipelines=[{{_base_.simsiam_photometric}}, {{_base_.simsiam_photometric}}]),
    dict(type='PackPairInputs'),
]))
optim_wrapper = dict(optimizer=dict(lr=lr))
auto_scale_lr = dict(base_batch_size=16, enable=False)  # the batch lr is scaled for (one process x 16)
custom_hooks = [
    dict(type='SimSiamHook', priority='HIGH', fix_pred_lr=True, lr=lr),
    dict(type='DenseSiamRegionSimHook', start=0.5),
    dict(type='NonFiniteLossHook'),
    dict(type='PairCropStatsHook'),
]
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
param_scheduler = {{_base_.quality_param_scheduler}}
train_cfg = {{_base_.quality_train_cfg}}
default_hooks = {{_base_.quality_default_hooks}}
log_processor = {{_base_.quality_log_processor}}
randomness = {{_base_.quality_randomness}}
