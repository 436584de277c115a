# mmpretrain's BYOL with ResNet-50: the baseline of the paper (Table 1, Table 4 first row), same projector and
# predictor widths as MultiSiam's 1-D branch. Loss -cos (eq. 1) as MultiSiam's 1-D branch, so losses compare.
model = dict(
    type='BYOL',
    base_momentum=0.004,
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(type='ResNet', depth=50, norm_cfg=dict(type='SyncBN'), zero_init_residual=False),
    neck=dict(type='NonLinearNeck', in_channels=2048, hid_channels=4096, out_channels=256, num_layers=2,
              with_bias=True, with_last_bn=False, with_avg_pool=True),
    head=dict(
        type='LatentPredictHead',
        loss=dict(type='CosineSimilarityLoss', shift_factor=0.0, scale_factor=1.0),
        predictor=dict(type='NonLinearNeck', in_channels=256, hid_channels=4096, out_channels=256, num_layers=2,
                       with_bias=True, with_last_bn=False, with_avg_pool=False)),
)
# In distributed runs every BatchNorm of the necks and heads (and of the EMA target) becomes torch's SyncBN too, as
# the backbone's, so the projector statistics are those of the global batch (the Runner converts only when distributed).
sync_bn = 'torch'
