# Quality benchmark, outside rung: mmpretrain's own `DenseCL` (the dense contrastive baseline users know), built
# from mmpretrain's registry as in mmpretrain 1.2.0's configs/densecl/densecl_resnet50_8xb32-coslr-200e_in1k.py
# (DenseCLNeck 2048 hidden -> 128, ContrastiveHead τ = 0.2, λ = 0.5, key encoder EMA weight 0.001, SGD lr 0.03 x
# batch / 256, momentum 0.9, wd 1e-4), shrunk to ResNet-18 / 128 px / batch 16 (_base_/cpu_scale.py) on the same pair
# pipeline with IoU threshold 0 and the same budget as the other arms. One change for the budget: the negative queue
# holds 1024 keys (mmpretrain: 65536); at 200 iterations x 16 images a 65536-key queue would stay almost all random
# initial keys for the whole run.
_base_ = ['byol_mmpretrain_r18_streets.py']
model = dict(
    _delete_=True,
    type='DenseCL',
    queue_len=1024,
    feat_dim=128,
    momentum=0.001,
    loss_lambda=0.5,
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(type='ResNet', depth=18, norm_cfg=dict(type='BN'), zero_init_residual=False),
    neck=dict(type='DenseCLNeck', in_channels=512, hid_channels=2048, out_channels=128, num_grid=None),
    head=dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'), temperature=0.2),
)
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.03 * 16 / 256, momentum=0.9, weight_decay=1e-4))
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
