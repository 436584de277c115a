"""Turn a pretraining checkpoint into backbone-only weights for transfer, and load them strictly.

A pretraining checkpoint (mmengine) holds the whole self-supervised model. Its backbone lives under

- ``backbone.``: the online network (the one trained by gradient);
- ``target_net.module.0.``: the EMA target network of MultiSiam / BYOL / MultiSiam-MoCo
  (``CosineEMA(nn.Sequential(backbone, neck))``), or ``target_net.module.backbone.`` for Odin
  (``CosineEMA(nn.ModuleDict(backbone=..., projector=...))``).

The extracted file is ``{'state_dict': {name: tensor}, 'meta': {...}}`` with only tensors and plain values, so
``torch.load(path, weights_only=True)`` reads it. Three key layouts are written:

- ``mmpretrain``: the names of mmpretrain's / mmseg's / mmdet's ``ResNet`` (``conv1``, ``bn1``, ``layer1.0.conv1``,
  ``layer1.0.downsample.0`` ...). For a plain ResNet these already are torchvision's names;
- ``torchvision``: the same names, checked against torchvision's ResNet vocabulary (a deep-stem ``ResNetV1c`` or an
  ``avg_down`` shortcut has no torchvision counterpart and is refused);
- ``detectron2``: the names of detectron2's ``ResNet`` (``stem.conv1``, ``stem.conv1.norm``, ``res2.0.conv1.norm``,
  ``res2.0.shortcut``, ``res2.0.shortcut.norm`` ...), the renaming of detectron2's
  ``tools/convert-torchvision-to-d2.py``.

Strict loading (:func:`load_backbone_strict`) exists because mmengine's ``init_cfg=dict(type='Pretrained')`` loads
non-strictly and only logs what did not match: a checkpoint with other names (e.g. an mmpretrain ResNet into mmseg's
deep-stem ``ResNetV1c``) silently leaves those layers randomly initialised.
"""
import os
import os.path as osp
import re
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

ONLINE_PREFIXES = ('backbone.',)
TARGET_PREFIXES = ('target_net.module.0.', 'target_net.module.backbone.')
FORMATS = ('mmpretrain', 'torchvision', 'detectron2')
NETWORKS = ('online', 'target')

_TORCHVISION_KEY = re.compile(
    r'^(conv1\.weight|bn1\.\w+|layer[1-4]\.\d+\.(conv[1-3]\.weight|bn[1-3]\.\w+|downsample\.[01]\.\w+))$')
_DETECTRON2_SUBS = (  # (mmpretrain / torchvision pattern, detectron2 replacement), applied in order
    (r'^conv1\.', 'stem.conv1.'),
    (r'^bn1\.', 'stem.conv1.norm.'),
    (r'^layer([1-4])\.', lambda m: f'res{int(m.group(1)) + 1}.'),
    (r'\.bn([1-3])\.', r'.conv\1.norm.'),
    (r'\.downsample\.0\.', '.shortcut.'),
    (r'\.downsample\.1\.', '.shortcut.norm.'),
)
_DETECTRON2_INVERSE_SUBS = (
    (r'^stem\.conv1\.norm\.', 'bn1.'),
    (r'^stem\.conv1\.', 'conv1.'),
    (r'^res([2-5])\.', lambda m: f'layer{int(m.group(1)) - 1}.'),
    (r'\.conv([1-3])\.norm\.', r'.bn\1.'),
    (r'\.shortcut\.norm\.', '.downsample.1.'),
    (r'\.shortcut\.', '.downsample.0.'),
)


class BackboneKeyError(KeyError):
    """The keys of a checkpoint do not match what is asked of them; the message names them."""

    def __str__(self) -> str:  # KeyError would print the repr of the message (quotes, escaped newlines)
        return str(self.args[0])


def _apply_subs(key: str, subs: Tuple) -> str:
    for pattern, repl in subs:
        key = re.sub(pattern, repl, key)
    return key


def to_torchvision_key(key: str) -> str:
    """The torchvision ResNet name of an mmpretrain ResNet parameter (the same name, validated)."""
    if not _TORCHVISION_KEY.match(key):
        raise BackboneKeyError(f'{key!r} has no torchvision ResNet counterpart (deep stem or avg_down ResNet?)')
    return key


def to_detectron2_key(key: str) -> str:
    """The detectron2 ResNet name of an mmpretrain ResNet parameter (``layer1.0.bn1.weight`` ->
    ``res2.0.conv1.norm.weight``)."""
    return _apply_subs(to_torchvision_key(key), _DETECTRON2_SUBS)


def from_detectron2_key(key: str) -> str:
    """The mmpretrain ResNet name of a detectron2 ResNet parameter (inverse of :func:`to_detectron2_key`)."""
    return to_torchvision_key(_apply_subs(key, _DETECTRON2_INVERSE_SUBS))


_KEY_CONVERTERS = {'mmpretrain': lambda key: key, 'torchvision': to_torchvision_key, 'detectron2': to_detectron2_key}


def convert_keys(state_dict: Mapping[str, Tensor], fmt: str) -> Dict[str, Tensor]:
    """Rename an mmpretrain-layout backbone state_dict into ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in _KEY_CONVERTERS:
        raise ValueError(f'unknown format {fmt!r}; choose one of {FORMATS}')
    return {_KEY_CONVERTERS[fmt](k): v for k, v in state_dict.items()}


def key_prefixes(state_dict: Mapping[str, Tensor], max_depth: int = 3, max_count: int = 16) -> List[str]:
    """The distinct dotted prefixes of a state_dict's module names (parameter names dropped), as deep as possible up
    to ``max_depth`` parts while there are at most ``max_count`` of them."""
    modules = [k.split('.')[:-1] for k in state_dict if '.' in k]
    for depth in range(max_depth, 0, -1):
        prefixes = sorted({'.'.join(parts[:depth]) + '.' for parts in modules})
        if len(prefixes) <= max_count:
            break
    return prefixes


def select_backbone(state_dict: Mapping[str, Tensor], network: str = 'online') -> Tuple[str, Dict[str, Tensor]]:
    """The backbone tensors of one network of a pretraining state_dict, with the prefix stripped.

    Returns the prefix found and the backbone state_dict. Raises :class:`BackboneKeyError` listing the prefixes that
    exist when there are no backbone keys for ``network``.
    """
    if network not in NETWORKS:
        raise ValueError(f'unknown network {network!r}; choose one of {NETWORKS}')
    for prefix in ONLINE_PREFIXES if network == 'online' else TARGET_PREFIXES:
        selected = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if selected:
            return prefix, selected
    wanted = ONLINE_PREFIXES if network == 'online' else TARGET_PREFIXES
    raise BackboneKeyError(f'no {network} backbone keys (prefix {" or ".join(wanted)}) in the checkpoint; '
                           f'prefixes found: {", ".join(key_prefixes(state_dict)) or "none"}')


def resolve_checkpoint(path: str) -> str:
    """A checkpoint file from a file path or from a work dir (its ``last_checkpoint`` record)."""
    if osp.isdir(path):
        record = osp.join(path, 'last_checkpoint')
        if not osp.isfile(record):
            raise FileNotFoundError(f'{path} is a directory without a last_checkpoint file (not an mmengine work dir?)')
        with open(record) as f:
            path = f.read().strip()
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    return path


def load_state_dict_file(path: str) -> Dict[str, Tensor]:
    """The model state_dict of a checkpoint file (weights-only load; mmengine's types are allow-listed)."""
    from .checkpoint_compat import allow_mmengine_checkpoints

    allow_mmengine_checkpoints()
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    return checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else checkpoint


def extract_backbone(checkpoint: str, network: str = 'online', fmt: str = 'mmpretrain') -> dict:
    """``{'state_dict', 'meta'}`` with the backbone of ``network`` from a pretraining checkpoint (file or work dir),
    its keys in layout ``fmt``."""
    path = resolve_checkpoint(checkpoint)
    prefix, backbone = select_backbone(load_state_dict_file(path), network)
    state_dict = convert_keys(backbone, fmt)
    meta = dict(source=osp.abspath(path), network=network, prefix=prefix, format=fmt,
                num_tensors=len(state_dict), num_parameters=sum(v.numel() for v in state_dict.values()))
    exported = dict(state_dict=state_dict, meta=meta)
    if fmt == 'detectron2':  # what detectron2's DetectionCheckpointer reads: 'model', matched by name suffix
        exported.update(model=state_dict, matching_heuristics=True)
    return exported


def save_backbone(exported: dict, out: str) -> None:
    """Write an :func:`extract_backbone` result with ``torch.save`` (creating the folder)."""
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    torch.save(exported, out)


def summary(exported: dict, out: Optional[str] = None) -> str:
    """A one-paragraph description of an extracted backbone."""
    meta = exported['meta']
    lines = [f'network:    {meta["network"]} (prefix {meta["prefix"]})',
             f'format:     {meta["format"]}',
             f'tensors:    {meta["num_tensors"]}',
             f'parameters: {meta["num_parameters"]:,} (elements, buffers included)',
             f'source:     {meta["source"]}']
    if out is not None:
        lines.append(f'output:     {osp.abspath(out)}')
    return '\n'.join(lines)


def load_backbone_strict(module: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Load ``state_dict`` into ``module`` requiring exactly its keys and shapes.

    Raises :class:`BackboneKeyError` naming every missing key, unexpected key and shape mismatch (all at once,
    before anything is copied).
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}'
                        for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape)
    if missing or unexpected or mismatched:
        parts = [f'{title} ({len(keys)}): {", ".join(keys)}'
                 for title, keys in (('missing keys', missing), ('unexpected keys', unexpected),
                                     ('shape mismatches', mismatched)) if keys]
        raise BackboneKeyError(f'backbone checkpoint does not match {type(module).__name__}:\n  ' + '\n  '.join(parts))
    module.load_state_dict(state_dict, strict=True)
