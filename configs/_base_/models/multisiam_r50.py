# MultiSiam with ResNet-50 (paper Sec. 4.1): the best setting of Table 4 (IoU 0.5 + cluster loss + self-attention +
# offset alignment, no residual (Table A5)), K = 3 cosine k-means, λ = 0.5, τ = 0.996 -> 1.
model = dict(
    type='MultiSiam',
    alignment='offset',
    loss_lambda=0.5,
    base_momentum=0.004,  # mmpretrain's CosineEMA: weight of the new parameters = 1 - τ
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(type='ResNet', depth=50, norm_cfg=dict(type='SyncBN'), zero_init_residual=False),
    neck=dict(type='MultiSiamNeck', in_channels=2048, hid_channels=4096, out_channels=256),
    head=dict(
        type='LatentPredictHead',
        loss=dict(type='CosineSimilarityLoss', shift_factor=0.0, scale_factor=1.0),  # eq. 1: -cos(q, z')
        # BYOL's predictor exactly as mmpretrain's BYOL config has it (tests/test_reference_equivalence.py):
        # Linear(bias) - BN - ReLU - Linear(no bias), no BN after the last layer.
        predictor=dict(type='NonLinearNeck', in_channels=256, hid_channels=4096, out_channels=256, num_layers=2,
                       with_bias=True, with_last_bn=False, with_avg_pool=False)),
    cluster_head=dict(
        type='ClusterHead', in_channels=256, hid_channels=4096, out_channels=256, self_attention=True,
        residual=False, num_clusters=3, metric='cosine', kmeans_iters=10, target='centroid'),
)
# In distributed runs every BatchNorm of the necks and heads (and of the EMA target) becomes torch's SyncBN too, as
# the backbone's, so the projector statistics are those of the global batch (the Runner converts only when distributed).
sync_bn = 'torch'
