# DenseSiam on ImageNet-1k at the paper's default total batch (Sec. 5.1: "The batch size is 512 by default"):
# 8 GPUs x 64 = 512, lr = 0.05 x 512 / 256 = 0.1 for the online network and for the fixed-lr predictors
# (SimSiamHook), everything else as densesiam_r50_8xb32-coslr-200e_in1k.py (200 epochs, cosine, wd 1e-4).
_base_ = ['./densesiam_r50_8xb32-coslr-200e_in1k.py']
lr = 0.05 * 8 * 64 / 256
train_dataloader = dict(batch_size=64)
optim_wrapper = dict(optimizer=dict(lr=lr))
auto_scale_lr = dict(base_batch_size=8 * 64, enable=False)
custom_hooks = [
    dict(type='SimSiamHook', priority='HIGH', fix_pred_lr=True, lr=lr),
    dict(type='DenseSiamRegionSimHook', start=0.5),  # Table 4vi
    dict(type='NonFiniteLossHook'),
    dict(type='PairCropStatsHook'),
]
