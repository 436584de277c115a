# Odin's data pipeline (Sec. 3.1, A.1) on the Waymo five-camera list of waymo_pairs.py: BYOL's two views,
# drawn independently (no IoU constraint), 224 x 224 bicubic, flipped with p = 0.5, plus the un-augmented spanning
# view (smallest box covering both views) resized to 448 x 448; then BYOL's photometric T / T' on the two views only.
_base_ = ['waymo_pairs.py']
odin_pipeline = [
    dict(type='RobustLoadImage'),  # LoadImageFromFile that skips bad files
    dict(type='OdinSpanningView', size=448, span='views', interpolation='bicubic',
         pair_crop=dict(type='IoUPairCrop', size=224, scale=(0.08, 1.0), ratio=(3. / 4., 4. / 3.), iou_thr=0.,
                        interpolation='bicubic', flip_prob=0.5)),
    dict(type='PairPhotometric', view_pipelines=[{{_base_.byol_photometric_t}}, {{_base_.byol_photometric_t_prime}}]),
    dict(type='PackOdinInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=odin_pipeline))
