# MoCo-based MultiSiam (supplement B.2; Table 1 "MultiSiam††"): RoI alignment before the projectors, self-attention
# in the online projector, per-cell InfoNCE (τ = 0.2) with the k-means centroid as positive and a DenseCL-style
# queue of negatives, plus MoCo v2's image-level InfoNCE; λ = 0.5. MoCo v2 optimisation: SGD, lr 0.03 x bs/256,
# wd 1e-4, cosine, key encoder momentum 0.999. Same data and epochs as configs/multisiam_waymo.py.
_base_ = ['../multisiam_waymo.py']
model = dict(
    _delete_=True,
    type='MultiSiamMoCo',
    queue_len=65536,
    temperature=0.2,
    momentum=0.001,
    num_clusters=3,
    metric='cosine',
    self_attention=True,
    residual=False,
    loss_lambda=0.5,
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(type='ResNet', depth=50, norm_cfg=dict(type='SyncBN'), zero_init_residual=False),
    neck=dict(type='MultiSiamNeck', in_channels=2048, hid_channels=2048, out_channels=128, with_bn=False),
)
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.03 * 1024 / 256, momentum=0.9, weight_decay=1e-4))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=325, by_epoch=True, begin=0, end=325)]
