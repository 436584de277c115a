'''Pure, batched building blocks shared by MultiSiam, DenseSiam and Odin.'''
from .sync_norm import AnyDeviceSyncBatchNorm, convert_any_device_sync_bn

__all__ = ['AnyDeviceSyncBatchNorm', 'convert_any_device_sync_bn']
