# FCN (ResNet-50, output stride 8) on BDD100K semantic segmentation (the 19 Cityscapes classes), 512x1024 crops,
# 40k iterations: the protocol of fcn_r50_pretrained_40k_cityscapes-512x1024.py on mmseg's BDD100KDataset
# (data/bdd100k: images/10k/{train,val}/*.jpg, labels/sem_seg/masks/{train,val}/*.png). mmseg 1.2.2 ships no FCN
# config for BDD100K; its bdd100k dataset base uses the same pipeline as Cityscapes (scale 2048x1024 x [0.5, 2.0],
# 512x1024 crop), so only the dataset changes.
_base_ = ['./fcn_r50_pretrained_40k_cityscapes-512x1024.py']

dataset_type = 'BDD100KDataset'
data_root = 'data/bdd100k/'
train_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root,
    data_prefix=dict(img_path='images/10k/train', seg_map_path='labels/sem_seg/masks/train')))
val_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root,
    data_prefix=dict(img_path='images/10k/val', seg_map_path='labels/sem_seg/masks/val')))
test_dataloader = val_dataloader
