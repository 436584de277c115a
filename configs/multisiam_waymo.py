# MultiSiam, ResNet-50, Waymo Open frames (five cameras), 8 GPUs x 128 = 1024, LARS lr 1.0 x 1024/256, wd 1e-5,
# cosine schedule, 325 epochs, τ 0.996 -> 1 (paper Sec. 4.1, Table 1). The model is the best of Table 4:
# IoU > 0.5 pairs, cluster loss (K = 3, cosine), self-attention without residual, offset alignment.
#   mim train multisiam_mm configs/multisiam_waymo.py --launcher slurm --gpus 8 --gpus-per-node 8 --partition P --srun-args=
#   tools/dist_train.sh configs/multisiam_waymo.py 8
_base_ = [
    '_base_/models/multisiam_r50.py',
    '_base_/datasets/waymo_pairs.py',
    '_base_/schedules/lars_coslr.py',
    '_base_/default_runtime.py',
]
