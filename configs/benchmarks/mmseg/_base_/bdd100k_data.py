# BDD100K semantic segmentation (mmseg's BDD100KDataset, the 19 Cityscapes classes) in its released layout:
# data/bdd100k/images/10k/{train,val}/*.jpg and labels/sem_seg/masks/{train,val}/*.png. The BDD100K FCN configs
# inherit a Cityscapes protocol and swap its datasets for these two (only the dataset changes).
bdd100k_train = dict(type='BDD100KDataset', data_root='data/bdd100k/',
                     data_prefix=dict(img_path='images/10k/train', seg_map_path='labels/sem_seg/masks/train'))
bdd100k_val = dict(type='BDD100KDataset', data_root='data/bdd100k/',
                   data_prefix=dict(img_path='images/10k/val', seg_map_path='labels/sem_seg/masks/val'))
