# Shared settings of the quality benchmark's pretraining arms (benchmarks/quality/run.py, docs/benchmarks.md):
# ResNet-18 (plain BN), 128 x 128 views, batch 16, an iteration-based schedule of `max_iters` with 10 % linear warm-up
# and cosine decay, seeded, on an image list written by the benchmark (one path per line). Every arm inherits this
# file beside its method's config and takes these values by `{{_base_.quality_*}}` (mmengine refuses a key defined
# by two bases), so backbone, resolution, batch, iterations and seed are equal across arms; each method keeps its
# own optimiser recipe. The data loader (batch_size, InfiniteSampler, drop_last) is
# written out in each arm beside its pipeline. The benchmark overrides ann_file, max_iters (train_cfg and param_scheduler) and the seed.
crop_size = 128
span_size = 2 * crop_size  # Odin's spanning view: A.1's 448 for 224 views
batch_size = 16
max_iters = 300
warmup_iters = 30

quality_param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup_iters, by_epoch=False, begin=warmup_iters,
         end=max_iters),
]
quality_train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
quality_default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(by_epoch=False, interval=100, max_keep_ckpts=1),
)
quality_log_processor = dict(by_epoch=False, window_size=25)
quality_randomness = dict(seed=0)
