# DenseSiam on ImageNet-1k train images (paper Sec. 5.1, Table 2): ResNet-50, 200 epochs, SGD lr 0.05 x batch / 256
# (8 x 32), weight decay 1e-4, momentum 0.9, cosine decay; everything as in the Waymo config, which carries the
# paper's setting. Labels are not used: the list file is any list of the train JPEG paths.
# The ablation switches of Table 4 (docs/densesiam.md) apply to this config.
_base_ = ['./densesiam_r50_8xb32-coslr-200e_waymo.py']
train_dataloader = dict(dataset=dict(data_root='data/imagenet/train', ann_file='../meta/train_images.txt'))
