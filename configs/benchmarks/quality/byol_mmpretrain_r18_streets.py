# Quality benchmark, outside rung: mmpretrain's own `BYOL` model (built from mmpretrain's registry, its neck and
# predictor exactly as in mmpretrain 1.2.0's configs/byol/byol_resnet50_16xb256-coslr-200e_in1k.py: 2 layers, bias,
# no last BN), on the same pair pipeline with IoU threshold 0 (independent RandomResizedCrops, BYOL's distribution),
# optimiser, EMA and budget as the "byol" rung of multisiam_r18_streets.py. It must agree with our "byol" rung within
# seed noise: that proves the ladder of docs/multisiam.md starts from real BYOL.
_base_ = ['multisiam_r18_streets.py']
_mlp = dict(type='NonLinearNeck', num_layers=2, with_bias=True, with_last_bn=False)
model = dict(
    _delete_=True,
    type='BYOL',
    base_momentum=0.01,
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(type='ResNet', depth=18, norm_cfg=dict(type='BN'), zero_init_residual=False),
    neck=dict(**_mlp, in_channels=512, hid_channels=1024, out_channels=128, with_avg_pool=True),
    head=dict(
        type='LatentPredictHead',
        loss=dict(type='CosineSimilarityLoss', shift_factor=0.0, scale_factor=1.0),
        predictor=dict(**_mlp, in_channels=128, hid_channels=1024, out_channels=128, with_avg_pool=False)),
)
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='RobustLoadImage'),
    dict(type='IoUPairCrop', size={{_base_.crop_size}}, scale=(0.08, 1.0), ratio=(3. / 4., 4. / 3.), iou_thr=0.0,
         interpolation='bicubic', flip_prob=0.5),
    dict(type='PairPhotometric', view_pipelines=[{{_base_.byol_photometric_t}}, {{_base_.byol_photometric_t_prime}}]),
    dict(type='PackPairInputs'),
]))
