# The paper-protocol FCN-16s of fcn_r50_pretrained_90k_cityscapes-769x769.py on BDD100K (mmseg's BDD100KDataset,
# the 19 Cityscapes classes; data layout in _base_/bdd100k_data.py). BDD100K images are
# 1280x720; the Cityscapes-769 pipeline resizes them to 2049x1025 (keep ratio) x [0.5, 2.0] before the 769 crop and
# tests on sliding 769 windows at 2049x1025, the scale mmseg's bdd100k base also uses (2048x1024).
_base_ = ['./fcn_r50_pretrained_90k_cityscapes-769x769.py', './_base_/bdd100k_data.py']

train_dataloader = dict(dataset={{_base_.bdd100k_train}})
val_dataloader = dict(dataset={{_base_.bdd100k_val}})
test_dataloader = val_dataloader
