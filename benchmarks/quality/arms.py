"""The arms of the quality benchmark: a pretraining config (or none) plus the switches that make the arm.

Every pretrained arm uses a config under configs/benchmarks/quality/ (ResNet-18, 128 px views, batch 16, equal
iterations and seed: configs/benchmarks/quality/_base_/cpu_scale.py). The four BYOL / MultiSiam arms are one config
and the Table 4 switches of docs/multisiam.md, so they differ only where the paper's ladder says they do. Two outside
rungs are mmpretrain's own models from its registry on the same pipeline and budget: its BYOL (which the "byol" rung
must match within seed noise) and its DenseCL.
"""
from typing import Dict, NamedTuple, Optional

QUALITY_CONFIGS = 'configs/benchmarks/quality'


class Arm(NamedTuple):
    """A pretraining method of the benchmark.

    Attributes:
        config: pretraining config, relative to the repository root; None for the random-init baseline.
        options: ``--cfg-options`` of tools/train.py that make the arm from ``config``.
        paper: the MultiSiam paper's Table 4 mIoU (Cityscapes, Waymo pretraining) of the same rung, if any.
        title: one-line description for the results table.
    """

    config: Optional[str]
    options: Dict[str, str]
    paper: Optional[float]
    title: str


_MULTISIAM = f'{QUALITY_CONFIGS}/multisiam_r18_streets.py'
_BYOL = {'model.cluster_head': 'None', 'model.neck.with_2d': 'False', 'model.loss_lambda': '1.0'}

ARMS: Dict[str, Arm] = {
    'random': Arm(None, {}, None, 'random initialisation (no pretraining)'),
    'byol': Arm(_MULTISIAM, {**_BYOL, 'train_dataloader.dataset.pipeline.1.iou_thr': '0.0'}, 67.2,
                'BYOL (independent crops)'),
    'byol_mmpretrain': Arm(f'{QUALITY_CONFIGS}/byol_mmpretrain_r18_streets.py', {}, 67.2,
                           "mmpretrain's BYOL (outside reference, independent crops)"),
    'byol_iou': Arm(_MULTISIAM, _BYOL, 69.2, 'BYOL + IoU > 0.5 pairs'),
    'multisiam_roi': Arm(_MULTISIAM, {'model.alignment': 'roi', 'model.cluster_head.self_attention': 'False'},
                         70.0, 'MultiSiam: IoU + cluster loss, RoI alignment'),
    'multisiam': Arm(_MULTISIAM, {}, 71.9, 'MultiSiam: IoU + cluster loss + self-attention + offset (best)'),
    'densesiam': Arm(f'{QUALITY_CONFIGS}/densesiam_r18_streets.py', {}, None, 'DenseSiam (PixSim + RegionSim)'),
    'odin': Arm(f'{QUALITY_CONFIGS}/odin_r18_streets.py', {}, None, 'Odin (ResNet + FPN, K = 16)'),
    'densecl_mmpretrain': Arm(f'{QUALITY_CONFIGS}/densecl_mmpretrain_r18_streets.py', {}, None,
                              "mmpretrain's DenseCL (outside dense baseline)"),
}
