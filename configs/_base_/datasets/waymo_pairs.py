# Waymo Open v1 frames of all five cameras (MultiSiam Sec. 4.1: about 790k training images, sizes (1920, 968) to
# (1920, 1280)) as an image list (one path per line, relative to data_root), written by
#   python tools/extract_waymo_frames.py WAYMO_V1/training --out data/waymo      # -> data/waymo/five_cameras.txt
# Front camera only: extract with --cameras FRONT --list-name front_camera and set ann_file='front_camera.txt'.
# Frames shrunk for a config (--shrink-for CONFIG) carry data/waymo/frame_shrink.json, which tools/train.py checks
# against the config's views. 128 images per GPU.
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
        ann_file='five_cameras.txt',
        pipeline={{_base_.pair_pipeline}},
    ),
)
