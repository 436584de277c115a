# View-pair pipeline of MultiSiam (Sec. 3.2, 4.1): two RandomResizedCrop views with IoU > 0.5, resized to 224
# (bicubic), flipped with p = 0.5 -- all recorded by IoUPairCrop -- then BYOL's asymmetric photometric augmentations
# T / T' per view, packed with the geometry into each DataSample (view_boxes, view_flips, ori_shape).
#
# T and T' are BYOL's (Grill et al. 2020, Table 6; also Odin A.1), written as in mmpretrain 1.2.0's
# configs/_base_/datasets/imagenet_bs32_byol.py minus its crop and flip (done by IoUPairCrop). They live here, as
# config data, rather than in a Python module: `byol_photometric_t` / `byol_photometric_t_prime` can be reused or
# overridden by any config that inherits this file. RandomGrayscale's channel weights are in BGR order, as images
# are loaded by cv2. ColorJitter's hue needs numpy < 2 with mmcv 2.1.0 (pinned in requirements/runtime.txt).
byol_color = [
    dict(type='RandomApply',
         transforms=[dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True, channel_weights=(0.114, 0.587, 0.2989)),
]
byol_photometric_t = byol_color + [
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf', prob=1.0),
    dict(type='Solarize', thr=128, prob=0.0),
]
byol_photometric_t_prime = byol_color + [
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf', prob=0.1),
    dict(type='Solarize', thr=128, prob=0.2),
]

pair_pipeline = [
    # LoadImageFromFile that skips bad files; reduced_decode=True decodes JPEGs at the coarsest DCT scale (1/2, 1/4,
    # 1/8) at which both views keep 224 pixels, with the same boxes and recorded geometry (see RobustLoadImage)
    dict(type='RobustLoadImage'),
    dict(type='IoUPairCrop', size=224, scale=(0.08, 1.0), ratio=(3. / 4., 4. / 3.), iou_thr=0.5,
         interpolation='bicubic', flip_prob=0.5),
    dict(type='PairPhotometric', view_pipelines=[byol_photometric_t, byol_photometric_t_prime]),
    dict(type='PackPairInputs'),
]

# The same pipeline with the decoding moved to the GPU (docs/data_ingestion.md, "GPU JPEG decoding"): the workers
# only read the files and draw boxes, flips and T / T' parameters; DevicePairPreprocessor decodes the batch with
# nvJPEG and makes the views there (configs/multisiam/multisiam_r50_8xb128-coslr-325e_waymo_device-decode.py).
device_pair_pipeline = [dict(pair_pipeline[0], device_decode=True)] + pair_pipeline[1:]
