# Quality benchmark, MultiSiam family (four arms by switches, see benchmarks/quality/arms.py and docs/multisiam.md's
# Table 4 rows): this file is the paper's best setting (IoU > 0.5, cluster loss with K = 3 cosine k-means,
# self-attention, offset alignment), shrunk to ResNet-18 / 128 px / batch 16 (_base_/cpu_scale.py).
# LARS with BYOL's exclusions, base lr 1.0 x 16 / 256. The EMA starts at τ = 0.99 (base_momentum 0.01, the Table A4c
# ablation value) rather than 0.996: with a few hundred iterations a 0.996 target barely leaves its initialisation.
_base_ = [
    '../../_base_/models/multisiam_r50.py',
    '../../_base_/datasets/pair_pipeline.py',
    '../../_base_/schedules/lars_coslr.py',
    '../../_base_/default_runtime.py',
    '_base_/cpu_scale.py',
]
model = dict(
    base_momentum=0.01,
    backbone=dict(depth=18, norm_cfg=dict(type='BN')),
    neck=dict(in_channels=512, hid_channels=1024, out_channels=128),
    head=dict(predictor=dict(in_channels=128, hid_channels=1024, out_channels=128)),
    cluster_head=dict(in_channels=128, hid_channels=1024, out_channels=128),
)
train_dataloader = dict(
    batch_size={{_base_.batch_size}}, num_workers=2, persistent_workers=True, drop_last=True,
    sampler=dict(type='InfiniteSampler', shuffle=True), collate_fn=dict(type='default_collate'),
    dataset=dict(type='UnlabeledImageDataset', data_root='', ann_file='data/quality/pretrain.txt', pipeline=[
    dict(type='RobustLoadImage'),
    dict(type='IoUPairCrop', size={{_base_.crop_size}}, scale=(0.08, 1.0), ratio=(3. / 4., 4. / 3.), iou_thr=0.5,
         interpolation='bicubic', flip_prob=0.5),
    dict(type='PairPhotometric', view_pipelines=[{{_base_.byol_photometric_t}}, {{_base_.byol_photometric_t_prime}}]),
    dict(type='PackPairInputs'),
]))
optim_wrapper = dict(optimizer=dict(lr=1.0 * 16 / 256))
auto_scale_lr = dict(base_batch_size=16, enable=False)  # the batch lr is scaled for (one process x 16)
param_scheduler = {{_base_.quality_param_scheduler}}
train_cfg = {{_base_.quality_train_cfg}}
default_hooks = {{_base_.quality_default_hooks}}
log_processor = {{_base_.quality_log_processor}}
randomness = {{_base_.quality_randomness}}
