# BYOL baseline on the same Waymo frames and schedule as configs/multisiam_waymo.py (paper Table 1: BYOL, Waymo,
# 325 epochs). Plain BYOL crops: IoUPairCrop with iou_thr=0 draws the two RandomResizedCrops independently, which is
# BYOL's own distribution; the recorded geometry is simply not used by the model.
_base_ = [
    '../_base_/models/byol_r50.py',
    '../_base_/datasets/waymo_pairs.py',
    '../_base_/schedules/lars_coslr.py',
    '../_base_/default_runtime.py',
]
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='RobustLoadImage'),  # LoadImageFromFile that skips bad files
    dict(type='IoUPairCrop', size=224, scale=(0.08, 1.0), ratio=(3. / 4., 4. / 3.), iou_thr=0.0,
         interpolation='bicubic', flip_prob=0.5),
    dict(type='PairPhotometric', view_pipelines=[{{_base_.byol_photometric_t}}, {{_base_.byol_photometric_t_prime}}]),
    dict(type='PackPairInputs'),
]))
