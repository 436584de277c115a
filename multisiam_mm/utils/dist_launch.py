"""Distributed launch without CUDA: torchrun (``--launcher pytorch``) and Slurm (``--launcher slurm``) on CPU nodes.

mmengine's ``init_dist`` calls ``torch.cuda.set_device`` and its Runner wraps the model with
``device_ids=[LOCAL_RANK]``, which both fail on CPU-only machines; DDP also refuses torch's ``SyncBatchNorm`` in a
CPU module. ``tools/train.py`` therefore, when the Runner's device is the CPU, initialises the process group itself
with the gloo backend (the Runner then skips ``init_dist``) and wraps the model with
:class:`CPUDistributedDataParallel` (no device ids, torch's SyncBN layers replaced by ``AnyDeviceSyncBN``, which
synchronises over gloo). On GPUs (and mmengine's other accelerators) nothing here is used.
"""
import datetime
import os
import subprocess
from typing import Callable, Mapping, MutableMapping, Optional

import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from multisiam_mm.models.utils import convert_any_device_sync_bn

DEFAULT_MASTER_PORT = '29500'  # torch.distributed's default, as in mmengine's _init_dist_slurm


def first_slurm_host(node_list: str) -> str:
    """The first host name of a Slurm node list (``node[1-3],gpu07`` -> ``node1``), from ``scontrol``."""
    res = subprocess.run(['scontrol', 'show', 'hostnames', node_list], capture_output=True, text=True, check=True)
    hosts = res.stdout.split()
    if not hosts:
        raise RuntimeError(f'scontrol show hostnames {node_list!r} returned no host: {res.stderr.strip()}')
    return hosts[0]


def slurm_dist_env(environ: Mapping[str, str],
                   first_host: Callable[[str], str] = first_slurm_host) -> dict:
    """The torch.distributed variables of a task started by ``srun``, derived as mmengine's ``_init_dist_slurm`` does.

    ``RANK`` = ``SLURM_PROCID``, ``WORLD_SIZE`` = ``SLURM_NTASKS``, ``LOCAL_RANK`` = ``SLURM_LOCALID``,
    ``MASTER_ADDR`` = the first host of ``SLURM_NODELIST`` unless ``MASTER_ADDR`` is set, ``MASTER_PORT`` = the
    existing ``MASTER_PORT`` or 29500.

    Args:
        environ: the task's environment (``os.environ``).
        first_host: maps a Slurm node list to its first host name (called only when ``MASTER_ADDR`` is not set).

    Returns:
        The five variables as strings.
    """
    missing = [k for k in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST', 'SLURM_LOCALID') if k not in environ]
    if missing:
        raise KeyError(f'--launcher slurm needs the variables srun sets; missing: {", ".join(missing)}')
    master_addr = environ.get('MASTER_ADDR') or first_host(environ['SLURM_NODELIST'])
    return dict(RANK=str(int(environ['SLURM_PROCID'])), WORLD_SIZE=str(int(environ['SLURM_NTASKS'])),
                LOCAL_RANK=str(int(environ['SLURM_LOCALID'])), MASTER_ADDR=master_addr,
                MASTER_PORT=environ.get('MASTER_PORT') or DEFAULT_MASTER_PORT)


def replace_torch_sync_bn(module: nn.Module) -> nn.Module:
    """Replace the ``nn.SyncBatchNorm`` layers of ``module`` (only those: plain BNs stay per process, as on GPUs) by
    ``AnyDeviceSyncBN`` layers sharing their parameters and buffers. Returns the module (a new one only if
    ``module`` itself is a SyncBN)."""
    if isinstance(module, nn.SyncBatchNorm):
        return convert_any_device_sync_bn(module)
    for name, child in module.named_children():
        module.add_module(name, replace_torch_sync_bn(child))
    return module


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's ``MMDistributedDataParallel`` for a CPU module: torch's SyncBN layers (``norm_cfg=dict(type=
    'SyncBN')``, ``sync_bn = 'torch'``) become ``AnyDeviceSyncBN`` first; pass ``device_ids=None``."""

    def __init__(self, module: nn.Module, **kwargs) -> None:
        super().__init__(module=replace_torch_sync_bn(module), **kwargs)


def cpu_wrapper_cfg(model_wrapper_cfg: Optional[dict], find_unused_parameters: bool = False) -> dict:
    """The model wrapper config for a CPU run: ``device_ids`` and ``output_device`` None, which DDP requires for
    CPU modules, and :class:`CPUDistributedDataParallel` in place of ``MMDistributedDataParallel``.

    Args:
        model_wrapper_cfg: the config's ``model_wrapper_cfg`` (None: the Runner's default wrapper, with
            ``broadcast_buffers=False``).
        find_unused_parameters: the config's ``find_unused_parameters`` (used for the default wrapper).

    Returns:
        A new dict; a wrapper that is not a ``DistributedDataParallel`` is returned unchanged (copied).
    """
    if model_wrapper_cfg is None:
        return dict(type='CPUDistributedDataParallel', broadcast_buffers=False,
                    find_unused_parameters=find_unused_parameters, device_ids=None, output_device=None)
    cfg = dict(model_wrapper_cfg)
    if cfg.get('type', 'MMDistributedDataParallel') in ('MMDistributedDataParallel', MMDistributedDataParallel):
        cfg['type'] = 'CPUDistributedDataParallel'
    wrapper = MODEL_WRAPPERS.get(cfg['type']) if isinstance(cfg['type'], str) else cfg['type']
    if isinstance(wrapper, type) and issubclass(wrapper, DistributedDataParallel):
        cfg.update(device_ids=None, output_device=None)
    return cfg


def init_cpu_dist(launcher: str, timeout: Optional[float] = None,
                  environ: Optional[MutableMapping[str, str]] = None) -> None:
    """Initialise the default process group with gloo for ``launcher`` ('pytorch' or 'slurm').

    For Slurm the variables of :func:`slurm_dist_env` are written into ``environ`` first (as mmengine does), so that
    later readers (the Runner's ``LOCAL_RANK``, the logger) see them. The rendezvous is TCP at MASTER_ADDR:MASTER_PORT.

    Args:
        launcher: 'pytorch' (torchrun has set RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) or 'slurm'.
        timeout: the collective timeout in seconds (``env_cfg.dist_cfg.timeout``), None for torch's default.
        environ: the environment to read and update (default ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    if launcher == 'slurm':
        environ.update(slurm_dist_env(environ))
    elif launcher != 'pytorch':
        raise ValueError(f'CPU distributed launch supports the pytorch and slurm launchers, not {launcher!r}')
    kwargs = {} if timeout is None else dict(timeout=datetime.timedelta(seconds=timeout))
    init_method = f"tcp://{environ['MASTER_ADDR']}:{environ['MASTER_PORT']}"
    torch_dist.init_process_group(backend='gloo', init_method=init_method, rank=int(environ['RANK']),
                                  world_size=int(environ['WORLD_SIZE']), **kwargs)


def prepare_cpu_distributed(cfg: Config) -> None:
    """Make a distributed config run on CPU: gloo process group initialised now, ``env_cfg.dist_cfg.backend`` gloo,
    model wrapper without device ids. ``cfg.launcher`` must be 'pytorch' or 'slurm'."""
    if cfg.get('env_cfg') is None:
        cfg.env_cfg = dict()
    if cfg.env_cfg.get('dist_cfg') is None:
        cfg.env_cfg.dist_cfg = dict()
    dist_cfg = cfg.env_cfg.dist_cfg
    dist_cfg.backend = 'gloo'
    cfg.model_wrapper_cfg = cpu_wrapper_cfg(cfg.get('model_wrapper_cfg'), cfg.get('find_unused_parameters', False))
    if not torch_dist.is_initialized():
        init_cpu_dist(cfg.launcher, dist_cfg.get('timeout'))
