# DenseSiam unsupervised semantic segmentation (Sec. 4, eq. 8) on the synthetic street scenes, at CPU scale:
# ResNet-18 + FPN encoder (stride-4 map, 128 channels), PixSim with the cross-entropy similarity and C = 8 outputs
# (the classes of data/synthetic_streets/classes.json), class-balanced cross-entropy on the other view's argmax
# pseudo labels, an over-clustering auxiliary PixSim head with K = 128 pseudo-categories, RegionSim (λ2 = 0.1) from
# 80 % of training with a 128-wide region predictor, 'auto' weights λ_pix = log K / (log C + log K),
# λ_aux = log C / (log C + log K), λ_ce = 1. Evaluated by the Hungarian-matched mIoU (Sec. 5.1) on the 64 val images
# (mIoU, mIoU_st over road ... pole, mIoU_th over car and person).
# Paper setting (Sec. 5.1): ResNet-18 initialised from supervised ImageNet weights (as PiCIE), batch 256, SGD with the
# pre-training lr (0.05 x 256 / 256), weight decay 1e-4, momentum 0.9, constant lr, 10 epochs, PiCIE's augmentations
# (appendix A: jitter 0.3/0.3/0.3/0.1 with p 0.8, grayscale p 0.2, blur p 0.5, crop scale [0.5, 1], flip). Here the
# backbone starts from scratch (no download); for the paper's start add
#   --cfg-options model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=torchvision://resnet18
# Sec. 4 does not give K, the RegionSim start or the region predictor width; they are the authors' released config
# (densesiam_r18_fpn_aux_seg-rebalance_4x64_sgd-fix-10e_coco-curated.py: num_aux_classes=128, RegionSim weight 0 for
# epochs 0-7 of 10 and 0.1 from epoch 8, region predictor 128 -> 128 -> 128). The former readings are switches
# (docs/densesiam.md): model.aux_head.out_channels=32 (4 x C), model.region_head.pred_hid_channels=32,
# custom_hooks.0.start=0.5 (Table 4vi, a pre-training ablation).
# Data: python tools/gen_synthetic_streets.py --out data/synthetic_streets
#   python tools/train.py configs/densesiam/densesiam-useg_r18_fpn_synthetic-streets.py
_base_ = ['../_base_/default_runtime.py']
num_classes = 8
crop_size = 128
batch_size = 16
max_iters = 200
lr = 0.05 * batch_size / 256

model = dict(
    type='DenseSiamSegmentor',
    grid_size=14,  # G x G points of v ∩ v' per image (Table 4i's largest)
    loss_pix_weight='auto',
    loss_ce_weight=1.0,
    loss_aux_weight='auto',
    loss_region_weight=0.1,
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(type='ResNet', depth=18, out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN')),
    encoder_neck=dict(type='mmdet.FPN', in_channels=[64, 128, 256, 512], out_channels=128, num_outs=4),
    # projector 128 -> 128 -> 128 -> C (last BN without affine); predictor C -> 128 -> C
    pix_head=dict(type='PixSimHead', in_channels=128, hid_channels=128, out_channels=num_classes,
                  pred_hid_channels=128, grid_order='proj_pred_grid', similarity='cross_entropy'),
    aux_head=dict(type='PixSimHead', in_channels=128, hid_channels=128, out_channels=128,
                  pred_hid_channels=128, grid_order='proj_pred_grid', similarity='cross_entropy'),
    region_head=dict(type='RegionSimHead', in_channels=128, hid_channels=128, out_channels=128, pred_hid_channels=128,
                     temperature=0.1),
)

picie_photometric = [
    dict(type='RandomApply',
         transforms=[dict(type='ColorJitter', brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True, channel_weights=(0.114, 0.587, 0.2989)),
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf', prob=0.5),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=2,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='ResumableInfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='UnlabeledImageDataset',
        data_root='data/synthetic_streets',
        ann_file='train.txt',
        pipeline=[
            dict(type='RobustLoadImage'),
            dict(type='IoUPairCrop', size=crop_size, scale=(0.5, 1.0), ratio=(3. / 4., 4. / 3.), iou_thr=0.01,
                 interpolation='bilinear', flip_prob=0.5),
            dict(type='PairPhotometric', view_pipelines=[picie_photometric, picie_photometric]),
            dict(type='PackPairInputs'),
        ]))

# whole 320 x 224 val images with their label maps (mmseg's folder dataset); predictions at the label size
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='mmseg.BaseSegDataset',
        data_root='data/synthetic_streets',
        data_prefix=dict(img_path='images/val', seg_map_path='semantic/val'),
        img_suffix='.jpg',
        seg_map_suffix='.png',
        metainfo=dict(classes=('road', 'sidewalk', 'building', 'sky', 'vegetation', 'pole', 'car', 'person')),
        ignore_index=255,
        reduce_zero_label=False,
        pipeline=[
            dict(type='mmseg.LoadImageFromFile'),
            dict(type='mmseg.LoadAnnotations'),
            dict(type='mmseg.PackSegInputs'),
        ]))
val_evaluator = dict(type='HungarianMIoU', num_classes=num_classes, ignore_index=255,
                     stuff_classes=[0, 1, 2, 3, 4, 5], thing_classes=[6, 7])  # Cityscapes' things: car, person
val_cfg = dict(type='ValLoop')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
test_cfg = dict(type='TestLoop')

# constant lr (Sec. 5.1: "the constant learning schedule works better")
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=lr, weight_decay=1e-4, momentum=0.9))
auto_scale_lr = dict(base_batch_size=batch_size, enable=False)  # the batch lr is scaled for (1 process x 16)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=max_iters)]
train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters // 2)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters // 2, max_keep_ckpts=2),
)
log_processor = dict(by_epoch=False, window_size=20)
custom_hooks = [
    dict(type='DenseSiamRegionSimHook', start=0.8),  # the released config: epoch 8 of 10
    dict(type='NonFiniteLossHook'),
    dict(type='PairCropStatsHook'),
]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
# the FPN's coarser output convs and, before the hook's switch, RegionSim's head get no gradient
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
