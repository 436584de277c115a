# Quality benchmark, Odin arm: configs/odin/odin_r50_8xb128-coslr-300e_waymo.py (ResNet + FPN, K = 16, α = 0.1,
# discovery network by EMA) shrunk to ResNet-18 / 128 px views / batch 16 (_base_/cpu_scale.py). The spanning view
# is 256 px (A.1's 2x the view size); discovery_grid 16 pools its stride-4 map (64 x 64) to 16 x 16 before K-means.
# MLPs 1024 -> 128 as the other arms. LARS, base lr 0.2 x 16 / 256. For a few hundred iterations the target EMA
# starts at 0.99 (target_momentum 0.01) and the discovery network follows with λτ = 1e-2 instead of 1e-3 (at 1e-3
# it would stay near its random initialisation for the whole run).
_base_ = ['../../odin/odin_r50_8xb128-coslr-300e_waymo.py', '_base_/cpu_scale.py']
model = dict(
    target_momentum=0.01,
    discovery_momentum=0.01,
    discovery_grid=16,
    backbone=dict(depth=18, norm_cfg=dict(type='BN')),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=128),
    projector=dict(in_channels=128, hid_channels=1024, out_channels=128),
    predictor=dict(in_channels=128, hid_channels=1024, out_channels=128),
)
train_dataloader = dict(
    batch_size={{_base_.batch_size}}, num_workers=2, persistent_workers=True, drop_last=True,
    sampler=dict(type='InfiniteSampler', shuffle=True), collate_fn=dict(type='default_collate'),
    dataset=dict(type='UnlabeledImageDataset', data_root='', ann_file='data/quality/pretrain.txt', pipeline=[
    dict(type='RobustLoadImage'),
    dict(type='OdinSpanningView', size={{_base_.span_size}}, span='views', interpolation='bicubic',
         pair_crop=dict(type='IoUPairCrop', size={{_base_.crop_size}}, scale=(0.08, 1.0), ratio=(3. / 4., 4. / 3.),
                        iou_thr=0., interpolation='bicubic', flip_prob=0.5)),
    dict(type='PairPhotometric', view_pipelines=[{{_base_.byol_photometric_t}}, {{_base_.byol_photometric_t_prime}}]),
    dict(type='PackOdinInputs'),
]))
optim_wrapper = dict(optimizer=dict(lr=0.2 * 16 / 256))
auto_scale_lr = dict(base_batch_size=16, enable=False)  # the batch lr is scaled for (one process x 16)
param_scheduler = {{_base_.quality_param_scheduler}}
train_cfg = {{_base_.quality_train_cfg}}
default_hooks = {{_base_.quality_default_hooks}}
log_processor = {{_base_.quality_log_processor}}
randomness = {{_base_.quality_randomness}}
