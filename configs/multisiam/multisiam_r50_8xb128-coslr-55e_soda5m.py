# MultiSiam on SODA5M (SODA10M splits 0, 2, 4, 6, 8; paper Table 1 last row): 55 epochs, otherwise as Waymo.
# The list file holds the image paths of the five splits relative to data_root.
_base_ = ['../multisiam_waymo.py']
max_epochs = 55
train_dataloader = dict(dataset=dict(data_root='data/soda10m', ann_file='soda5m_splits_02468.txt'))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 10, by_epoch=True, begin=10, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
