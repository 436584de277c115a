# A generic semantic-segmentation folder for mmsegmentation (default_scope='mmseg'): images and class-index label
# PNGs in parallel folder trees, read by mmseg's BaseSegDataset, scored with IoUMetric.
#
# Layout: <data_root>/<train_img_dir>/**/<name><img_suffix> with the label map
#         <data_root>/<train_ann_dir>/**/<name><seg_map_suffix> (the same relative path and name); val likewise.
# Labels: 0..len(classes)-1 per pixel, `ignore_index` for unlabelled pixels (no reduce_zero_label, no label map).
#
# Variables (a derived config overrides the dataset fields; tools/probe_segmentation.py sets them from arguments):
#   data_root       folder holding the image and label trees
#   train_img_dir, train_ann_dir, val_img_dir, val_ann_dir   sub-folders of data_root
#   img_suffix, seg_map_suffix   file-name endings that pair an image with its label map
#   metainfo        dict(classes=(...), palette=[...]): class names in label-index order (palette optional)
#   ignore_index    label value excluded from the loss and the metric
#   img_scale       (w, h) the images are resized to (keeping the aspect ratio), train scale jitter 0.5-2.0
#   crop_size       (h, w) training crop (padded with ignore_index where the image is smaller)
# The defaults are placeholders for a folder at data/seg_folder with images/ and labels/ trees.
dataset_type = 'BaseSegDataset'
data_root = 'data/seg_folder'
train_img_dir, train_ann_dir = 'images/train', 'labels/train'
val_img_dir, val_ann_dir = 'images/val', 'labels/val'
img_suffix, seg_map_suffix = '.jpg', '.png'
metainfo = dict(classes=('background', 'foreground'))
ignore_index = 255
img_scale = (320, 224)
crop_size = (224, 224)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
_folder = dict(type=dataset_type, data_root=data_root, metainfo=metainfo, img_suffix=img_suffix,
               seg_map_suffix=seg_map_suffix, ignore_index=ignore_index, reduce_zero_label=False)
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(**_folder, data_prefix=dict(img_path=train_img_dir, seg_map_path=train_ann_dir),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**_folder, data_prefix=dict(img_path=val_img_dir, seg_map_path=val_ann_dir),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'], ignore_index=ignore_index)
test_evaluator = val_evaluator
