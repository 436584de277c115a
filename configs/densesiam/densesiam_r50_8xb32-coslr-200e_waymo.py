# DenseSiam (Zhang et al., ECCV 2022), ResNet-50, Waymo Open frames (five cameras) (image list of
# _base_/datasets/waymo_pairs.py), with the paper's ImageNet pre-training setting (Sec. 5.1, appendix A):
#   SimSiam's recipe: SGD, lr = 0.05 x total batch / 256, momentum 0.9, weight decay 1e-4, cosine decay over 200
#   epochs, predictors at a fixed lr (SimSiamHook); 8 GPUs x 32 = 256 images -> lr 0.05 (SimSiam's own 256 batch).
#   The paper's default total batch is 512 (lr 0.1, Sec. 5.1): densesiam_r50_8xb64-coslr-200e_in1k.py. (The base lr
#   0.05, weight decay 1e-4 and momentum 0.9 are lost in the text extraction; they are SimSiam's and the authors'
#   released config's, which Sec. 5.1 says are the same for segmentation and pre-training.)
#   Model: PixSim on a 7x7 grid (proj -> pred -> grid, cross-entropy similarity of eq. 3, whose softmax gives
#   RegionSim its masks, Sec. 3.3), RegionSim from half-way (hook below),
#   global SimSiam branch on the whole view, L = L_img + 1.0 L_pix + 0.1 L_region (eq. 7, Table 4).
#   Views: SimSiam augmentations (appendix A: RandomResizedCrop scale [0.2, 1], flip, ColorJitter 0.4/0.4/0.4/0.1
#   with p 0.8, grayscale p 0.2, Gaussian blur sigma [0.1, 2] with p 0.5), the same for both views.
#   Pair threshold: PixSim and RegionSim need v ∩ v' to be non-empty, and DenseSiam has no IoU threshold of its own,
#   so IoUPairCrop keeps pairs with IoU > 0.01: this only rejects the disjoint or barely touching pairs (about 1 % of
#   RandomResizedCrop pairs at scale [0.2, 1] on a 3:2 frame, 0.5 % on ImageNet's 4:3), leaving SimSiam's view
#   distribution otherwise unchanged. (iou_thr=0 would disable the threshold and allow disjoint views.)
#   mim train multisiam_mm configs/densesiam/densesiam_r50_8xb32-coslr-200e_waymo.py --launcher slurm --gpus 8 ...
_base_ = [
    '../_base_/datasets/waymo_pairs.py',
    '../_base_/default_runtime.py',
]
lr = 0.05 * 8 * 32 / 256
max_epochs = 200

model = dict(
    type='DenseSiam',
    grid_size=7,  # G (Table 4i)
    loss_pix_weight=1.0,  # λ1 (Table 4ii)
    loss_region_weight=0.1,  # λ2 (Table 4iii)
    global_region='image',  # Table 4v
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(type='ResNet', depth=50, norm_cfg=dict(type='SyncBN'), zero_init_residual=True),
    # global branch: SimSiam's projector (3 layers, 2048) and predictor (2048 -> 512 -> 2048), -cos loss
    neck=dict(type='NonLinearNeck', in_channels=2048, hid_channels=2048, out_channels=2048, num_layers=3,
              with_last_bn_affine=False, with_avg_pool=True),
    head=dict(
        type='LatentPredictHead',
        loss=dict(type='CosineSimilarityLoss'),
        predictor=dict(type='NonLinearNeck', in_channels=2048, hid_channels=512, out_channels=2048,
                       with_avg_pool=False, with_last_bn=False, with_last_bias=True)),
    # PixSim / RegionSim heads: "512" channels in the projectors and predictors (Sec. 3.4), predictor hidden layers
    # included (pred_hid_channels=128 is SimSiam's 4x bottleneck, a switch); PixSim with eq. 3 (similarity=cosine:
    # eq. 2, a switch; RegionSim's softmax masks then come from a projector not trained as a distribution)
    pix_head=dict(type='PixSimHead', in_channels=2048, hid_channels=512, out_channels=512, pred_hid_channels=512,
                  grid_order='proj_pred_grid', similarity='cross_entropy'),
    region_head=dict(type='RegionSimHead', in_channels=2048, hid_channels=512, out_channels=512,
                     pred_hid_channels=512, temperature=0.1),
)
sync_bn = 'torch'  # every BN of the heads becomes SyncBN in distributed runs, as the backbone's

simsiam_photometric = [
    dict(type='RandomApply',
         transforms=[dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True, channel_weights=(0.114, 0.587, 0.2989)),
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf', prob=0.5),
]
densesiam_pipeline = [
    dict(type='RobustLoadImage'),  # LoadImageFromFile that skips bad files
    dict(type='IoUPairCrop', size=224, scale=(0.2, 1.0), ratio=(3. / 4., 4. / 3.), iou_thr=0.01,
         interpolation='bilinear', flip_prob=0.5),
    dict(type='PairPhotometric', view_pipelines=[simsiam_photometric, simsiam_photometric]),
    dict(type='PackPairInputs'),
]
train_dataloader = dict(batch_size=32, drop_last=True, dataset=dict(pipeline=densesiam_pipeline))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=lr, weight_decay=1e-4, momentum=0.9),
    paramwise_cfg=dict(custom_keys={'predictor': dict(fix_lr=True)}))  # head., pix_head., region_head.predictor
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True, begin=0, end=max_epochs)]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs)
# the batch lr is scaled for (8 x 32). auto_scale_lr does not reach SimSiamHook's fixed predictor lr: with another
# batch set optim_wrapper.optimizer.lr and custom_hooks.0.lr together (and base_batch_size with them).
auto_scale_lr = dict(base_batch_size=8 * 32, enable=False)
custom_hooks = [
    dict(type='SimSiamHook', priority='HIGH', fix_pred_lr=True, lr=lr),
    dict(type='DenseSiamRegionSimHook', start=0.5),  # Table 4vi
    dict(type='NonFiniteLossHook'),  # replaces default_runtime's list, so repeated here
    dict(type='PairCropStatsHook'),
]
# RegionSim's head has no gradient before the hook turns it on
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
