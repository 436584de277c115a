# Odin with a ResNet-50 + FPN feature extractor (Sec. 3.1): h is the FPN's highest-resolution output (stride 4,
# 256 channels); g and q are BYOL's two-layer MLPs (4096 -> 256). K = 16 segments (Table 6), contrastive temperature
# α = 0.1 (A.3), target network λξ from 0.004 (BYOL's τ 0.996 -> 1, cosine), object discovery network updated by an
# EMA with λτ = 1e-3 (eq. 7; the Table 1 setting, Table 6 row "λτ = 10^-3").
# Not in the paper: discovery_grid=28 pools h0 (112 x 112 on the 448 spanning view) to 28 x 28 before g_τ and
# K-means, to keep the per-cell projector and the per-image K-means affordable (see docs/odin.md).
model = dict(
    type='Odin',
    num_clusters=16,
    temperature=0.1,
    target_momentum=0.004,
    discovery_update='ema',
    discovery_momentum=1e-3,
    discovery_interval=100,
    discovery_by_epoch=True,
    discovery_grid=28,
    kmeans_iters=10,
    kmeans_inits=2,
    mask_mode='bilinear',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(type='ResNet', depth=50, out_indices=(0, 1, 2, 3), norm_cfg=dict(type='SyncBN'),
                  zero_init_residual=False),
    neck=dict(type='mmdet.FPN', in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=4),
    projector=dict(in_channels=256, hid_channels=4096, out_channels=256),
    predictor=dict(in_channels=256, hid_channels=4096, out_channels=256),
)
# Only the FPN's stride-4 output is used, so the output convs of its coarser levels get no gradient.
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
