# LARS + cosine schedule of the paper (Sec. 4.1): base lr 1.0 scaled by batch/256, weight decay 1e-5, BYOL's
# exclusions (no weight decay and no LARS adaptation for BN and bias parameters), 10 warm-up epochs.
# lr = base_lr * total_batch / 256 = 1.0 * 1024 / 256 here; a config with another batch or base lr sets
# optim_wrapper.optimizer.lr itself (mmengine evaluates this file before the child's variables), and with it
# auto_scale_lr.base_batch_size. The warm-up is not in the MultiSiam paper: it is BYOL's (10 epochs, linear), as in
# OpenSelfSup's BYOL config, the codebase of the paper's experiments (Sec. 4.1).
max_epochs = 325
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='TrainableParamsOptimWrapperConstructor',  # the frozen EMA target's parameters: one log line
    optimizer=dict(type='LARS', lr=4.0, momentum=0.9, weight_decay=1e-5),
    paramwise_cfg=dict(custom_keys={
        'bn': dict(decay_mult=0, lars_exclude=True),
        'bias': dict(decay_mult=0, lars_exclude=True),
        'downsample.1': dict(decay_mult=0, lars_exclude=True),
    }),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 10, by_epoch=True, begin=10, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs)  # with ResumableSampler: docs/resume.md
# base_batch_size is the batch the lr above is scaled for (8 GPUs x 128): enabling auto_scale_lr (tools/train.py
# --cfg-options auto_scale_lr.enable=True) then rescales lr by (GPUs x batch per GPU) / 1024 and leaves it unchanged on
# 8 x 128. mmengine counts GPUs x batch per GPU, not accumulative_counts (tools/print_schedule.py prints both).
auto_scale_lr = dict(base_batch_size=1024, enable=False)
