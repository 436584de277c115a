# Runtime shared by every multisiam_mm config: mmpretrain's registries, the plugin import, logging, checkpoints.
# The training loop and sampler come with the schedule and the data: ResumableEpochBasedTrainLoop + ResumableSampler
# (epoch-based) or ResumableIterBasedTrainLoop + ResumableInfiniteSampler (iteration-based), which resume in
# constant time and deterministically (docs/resume.md).
default_scope = 'mmpretrain'
custom_imports = dict(imports=['multisiam_mm'], allow_failed_imports=False)

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),  # prints eta, losses, lr, k-means statistics
    param_scheduler=dict(type='ParamSchedulerHook'),
    # every 10 epochs, plus a mid-epoch checkpoint every 1000 iterations (an epoch on Waymo is hours of a node);
    # iteration-based configs set by_epoch=False and their own interval (docs/resume.md)
    checkpoint=dict(type='MidEpochCheckpointHook', interval=10, iter_interval=1000, max_keep_ckpts=3),
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
    dict(type='BadFilesHook'),  # unreadable images: quarantined in work_dir/bad_files.txt, counted in the log
]
log_processor = dict(window_size=10)
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)
