# SODA10M unlabeled images (Han et al. 2021, the SSLAD-2D download) as view pairs, 128 images per GPU.
# The labeled part unpacks to data/soda10m/SSLAD-2D/labeled/{train,val,test,annotations}; the unlabeled images go in
# data/soda10m/SSLAD-2D/unlabeled/, in any number of sub-folders (the scan is recursive, sorted, case-insensitive on
# extensions, hidden files skipped), so the labeled images are not mixed in. Scanning ten million files takes minutes
# at every start: for the full set, write a list file once and point ann_file at it (docs/data_ingestion.md), e.g.
#   cd data/soda10m && find SSLAD-2D/unlabeled -type f -iname '*.jpg' | sort > unlabeled.txt
#   train_dataloader = dict(dataset=dict(data_prefix='', ann_file='unlabeled.txt'))
# The loader (128 images per GPU, 8 workers, pair pipeline) is the Waymo one; only the image source differs.
_base_ = ['waymo_pairs.py']
train_dataloader = dict(dataset=dict(data_root='data/soda10m', data_prefix='SSLAD-2D/unlabeled', ann_file=''))
