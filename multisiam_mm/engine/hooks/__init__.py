from .bad_files_hook import BadFilesHook
from .channels_last import ChannelsLastHook
from .cluster_map_hook import ClusterMapHook
from .densesiam_region_hook import DenseSiamRegionSimHook
from .mid_epoch_checkpoint import MidEpochCheckpointHook
from .nonfinite_loss import NonFiniteLossError, NonFiniteLossHook
from .pair_crop_stats_hook import PairCropStatsHook
from .strict_backbone_load import StrictBackboneLoadHook

__all__ = ['BadFilesHook', 'ChannelsLastHook', 'ClusterMapHook', 'DenseSiamRegionSimHook', 'MidEpochCheckpointHook',
           'NonFiniteLossError', 'NonFiniteLossHook', 'PairCropStatsHook', 'StrictBackboneLoadHook']
