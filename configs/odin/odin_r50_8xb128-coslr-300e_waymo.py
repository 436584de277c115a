# Odin (ResNet-50 + FPN) on Waymo Open frames (five cameras): 8 GPUs x 128 = 1024 images, 300 epochs.
# The paper pretrains on ImageNet only (see odin_r50_16xb256-lars-1000e_in1k.py); this config applies its recipe
# (A.1, A.3) to the MultiSiam data: LARS, base lr 0.2 x batch / 256, weight decay 1.5e-5 (as printed in A.3),
# cosine decay after 10 warm-up epochs, BYOL's exclusions of BN and bias parameters.
#   tools/dist_train.sh configs/odin/odin_r50_8xb128-coslr-300e_waymo.py 8
_base_ = [
    '../_base_/models/odin_r50_fpn.py',
    '../_base_/datasets/waymo_odin.py',
    '../_base_/schedules/lars_coslr.py',
    '../_base_/default_runtime.py',
]
max_epochs = 300
optim_wrapper = dict(optimizer=dict(lr=0.2 * 1024 / 256, weight_decay=1.5e-5))
auto_scale_lr = dict(base_batch_size=1024, enable=False)  # the batch lr is scaled for (8 x 128)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 10, by_epoch=True, begin=10, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
