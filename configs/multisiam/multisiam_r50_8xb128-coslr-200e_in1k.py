# MultiSiam on ImageNet-1k train images (supplement C): 200 epochs, all other hyper-parameters as on Waymo.
# Labels are not used: the list file is any list of the train JPEG paths (e.g. mmpretrain's meta/train.txt paths).
_base_ = ['../multisiam_waymo.py']
max_epochs = 200
train_dataloader = dict(dataset=dict(data_root='data/imagenet/train', ann_file='../meta/train_images.txt'))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 10, by_epoch=True, begin=10, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
