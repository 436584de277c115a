# The ablation setting of the paper (Sec. 4.3, Tables 2-4, A4, A5): 150 epochs, base lr 0.3, batch 1024 with the
# parameters updated every 4 iterations to mimic batch 4096 (as BYOL): lr = 0.3 x 4096 / 256 = 4.8.
# The model here is the ablation reference of Tables 2 and 3 (70.0 mIoU): IoU 0.5, RoI alignment, cluster loss,
# K = 3 cosine, no self-attention, base momentum τ = 0.99 (supplement Table A4 lists 0.99 for the ablation rows).
# Every other row is a --cfg-options switch: see docs/multisiam.md. The target EMA moves once per optimiser step
# (ema_interval = accumulative_counts), as with one batch of 4096.
_base_ = ['../../multisiam_waymo.py']
max_epochs = 150
accumulative_counts = 4
model = dict(alignment='roi', base_momentum=0.01, ema_interval=accumulative_counts,
             cluster_head=dict(self_attention=False))
optim_wrapper = dict(optimizer=dict(lr=0.3 * 4096 / 256), accumulative_counts=accumulative_counts)
# lr is scaled for 4096 = 8 x 128 x 4, but mmengine's auto_scale_lr compares base_batch_size with GPUs x batch per
# GPU (it ignores accumulative_counts): 1024 here keeps lr unchanged on 8 GPUs when auto_scale_lr is enabled.
auto_scale_lr = dict(base_batch_size=4096 // accumulative_counts, enable=False)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 10, by_epoch=True, begin=10, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
