# Odin (ResNet-50 + FPN) on ImageNet-1k train images, the paper's pretraining (Sec. 3.1, A.3): 1000 epochs, LARS,
# batch 4096 (the paper: 128 TPU v3 workers; here 16 GPUs x 256), base lr 0.2 x 4096 / 256 = 3.2, weight decay
# 1.5e-5 (as printed in A.3), cosine decay, K = 16, λτ = 1e-3. Labels are not used: the list file is any list of
# the train JPEG paths. This is the reference of the Table 6 switches in docs/odin.md.
_base_ = ['./odin_r50_8xb128-coslr-300e_waymo.py']
max_epochs = 1000
train_dataloader = dict(batch_size=256,
                        dataset=dict(data_root='data/imagenet/train', ann_file='../meta/train_images.txt'))
optim_wrapper = dict(optimizer=dict(lr=0.2 * 4096 / 256))
auto_scale_lr = dict(base_batch_size=4096, enable=False)  # the batch lr is scaled for (16 x 256)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 10, by_epoch=True, begin=10, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
