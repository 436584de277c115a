# Runtime shared by every multisiam_mm config: mmpretrain's registries, the plugin import, logging, checkpoints.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['multisiam_mm'], allow_failed_imports=False)

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),  # prints eta, losses, lr, k-means statistics
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
custom_hooks = [
    dict(type='NonFiniteLossHook'),  # stop at a NaN / Inf loss before the optimizer step
    dict(type='PairCropStatsHook'),  # log IoUPairCrop's acceptance rate and fallbacks per batch
]
log_processor = dict(window_size=10)
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)
