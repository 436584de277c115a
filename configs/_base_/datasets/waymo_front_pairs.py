# Waymo Open front-camera frames as an image list (one path per line, relative to data_root), e.g. written by a
# frame extraction into data/waymo/front_camera.txt; 128 images per GPU.
_base_ = ['pair_pipeline.py']
train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='ResumableSampler', shuffle=True),  # mid-epoch resume, per-sample seeds (docs/resume.md)
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='UnlabeledImageDataset',
        data_root='data/waymo',
        ann_file='front_camera.txt',
        pipeline={{_base_.pair_pipeline}},
    ),
)
