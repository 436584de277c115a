# Short FCN fine-tune probe on the synthetic street scenes (docs/probes.md): a ResNet-18 (mmseg's ResNet, whose
# parameter names are mmpretrain's: `backbone.*` of a pretraining checkpoint loads with no missing or unexpected key),
# dilated to output stride 8, and mmseg's FCNHead; everything trains.
#   python tools/probe_segmentation.py --mode finetune --checkpoint CKPT --data-root data/synthetic_streets
# or with mmseg's tools: set model.backbone.init_cfg=dict(type='Pretrained', checkpoint=BACKBONE_ONLY_CKPT).
# Data: python tools/gen_synthetic_streets.py --out data/synthetic_streets (320x224 images, classes.json).
_base_ = ['./_base_/seg_folder.py']
default_scope = 'mmseg'

data_root = 'data/synthetic_streets'
metainfo = dict(
    classes=('road', 'sidewalk', 'building', 'sky', 'vegetation', 'pole', 'car', 'person'),
    palette=[[128, 64, 128], [244, 35, 232], [70, 70, 70], [70, 130, 180], [107, 142, 35], [153, 153, 153],
             [0, 0, 142], [220, 20, 60]])
ignore_index = 255
num_classes = 8
crop_size = (224, 224)
max_iters = 2000
_streets = dict(data_root=data_root, metainfo=metainfo, ignore_index=ignore_index, img_suffix='.jpg',
                seg_map_suffix='.png')
train_dataloader = dict(
    dataset=dict(**_streets, data_prefix=dict(img_path='images/train', seg_map_path='semantic/train')))
val_dataloader = dict(
    dataset=dict(**_streets, data_prefix=dict(img_path='images/val', seg_map_path='semantic/val')))
test_dataloader = val_dataloader

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_val=0, seg_pad_val=ignore_index, size=crop_size),
    backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(3, ), strides=(1, 2, 1, 1),
                  dilations=(1, 1, 2, 4), style='pytorch', norm_cfg=norm_cfg, norm_eval=False, frozen_stages=-1,
                  init_cfg=None),  # the probe tool sets a Pretrained init_cfg after a strict key check
    decode_head=dict(type='FCNHead', in_channels=512, in_index=0, channels=128, num_convs=2, concat_input=True,
                     dropout_ratio=0.1, num_classes=num_classes, norm_cfg=norm_cfg, align_corners=False,
                     ignore_index=ignore_index,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4),
                     clip_grad=None)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
log_processor = dict(by_epoch=False, window_size=10)
visualizer = dict(type='SegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')])
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
