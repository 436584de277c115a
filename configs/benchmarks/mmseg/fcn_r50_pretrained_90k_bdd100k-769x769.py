# The paper-protocol FCN-16s of fcn_r50_pretrained_90k_cityscapes-769x769.py on BDD100K (mmseg's BDD100KDataset,
# the 19 Cityscapes classes; data layout as in fcn_r50_pretrained_40k_bdd100k-512x1024.py). BDD100K images are
# 1280x720; the Cityscapes-769 pipeline resizes them to 2049x1025 (keep ratio) x [0.5, 2.0] before the 769 crop and
# tests on sliding 769 windows at 2049x1025, the scale mmseg's bdd100k base also uses (2048x1024).
_base_ = ['./fcn_r50_pretrained_90k_cityscapes-769x769.py']

dataset_type = 'BDD100KDataset'
data_root = 'data/bdd100k/'
train_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root,
    data_prefix=dict(img_path='images/10k/train', seg_map_path='labels/sem_seg/masks/train')))
val_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root,
    data_prefix=dict(img_path='images/10k/val', seg_map_path='labels/sem_seg/masks/val')))
test_dataloader = val_dataloader
