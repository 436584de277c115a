# FCN (ResNet-50, output stride 8) on BDD100K semantic segmentation (the 19 Cityscapes classes), 512x1024 crops,
# 40k iterations: the protocol of fcn_r50_pretrained_40k_cityscapes-512x1024.py on mmseg's BDD100KDataset (layout in
# _base_/bdd100k_data.py). mmseg 1.2.2 ships no FCN config for BDD100K; its bdd100k dataset base uses the same
# pipeline as Cityscapes (scale 2048x1024 x [0.5, 2.0], 512x1024 crop), so only the dataset changes.
_base_ = ['./fcn_r50_pretrained_40k_cityscapes-512x1024.py', './_base_/bdd100k_data.py']

train_dataloader = dict(dataset={{_base_.bdd100k_train}})
val_dataloader = dict(dataset={{_base_.bdd100k_val}})
test_dataloader = val_dataloader
