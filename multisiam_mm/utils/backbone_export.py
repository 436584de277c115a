"""Turn a pretraining checkpoint into backbone-only weights for transfer, and load them strictly.

A pretraining checkpoint (mmengine) holds the whole self-supervised model. Its backbone lives under

- ``backbone.``: the online network (the one trained by gradient);
- ``target_net.module.0.``: the EMA target network of MultiSiam / BYOL / MultiSiam-MoCo
  (``CosineEMA(nn.Sequential(backbone, neck))``), or ``target_net.module.backbone.`` for Odin
  (``CosineEMA(nn.ModuleDict(backbone=..., projector=...))``).

Three key layouts and files are written (:func:`exported_file_content`):

- ``mmpretrain``: ``{'state_dict': {name: tensor}, 'meta': {...}}`` with only tensors and plain values (so
  ``torch.load(path, weights_only=True)`` reads it), in the names of mmpretrain's / mmseg's / mmdet's ``ResNet``
  (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0`` ...);
- ``torchvision``: the plain state_dict in the same names (for a plain ResNet they are torchvision's), each checked
  against torchvision's ResNet vocabulary (a deep-stem ``ResNetV1c`` or an ``avg_down`` shortcut has no torchvision
  counterpart and is refused);
- ``detectron2``: a pickled ``{'model': {name: ndarray}, '__author__', 'matching_heuristics'}`` in the names of
  detectron2's ``ResNet`` (``stem.conv1``, ``stem.conv1.norm``, ``res2.0.conv1.norm``, ``res2.0.shortcut``,
  ``res2.0.shortcut.norm`` ...), the renaming and file layout of MoCo's ``detection/convert-pretrain-to-detectron2.py``.

Strict loading (:func:`load_backbone_strict`) exists because mmengine's ``init_cfg=dict(type='Pretrained')`` loads
non-strictly and only logs what did not match: a checkpoint with other names (e.g. an mmpretrain ResNet into mmseg's
deep-stem ``ResNetV1c``) silently leaves those layers randomly initialised.
"""
import os
import os.path as osp
import pickle
import re
import zipfile
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


# (bottleneck blocks?, blocks per stage) -> depth, as in mmpretrain's / torchvision's ResNet.arch_settings.
RESNET_ARCHS = {(False, (2, 2, 2, 2)): 18, (False, (3, 4, 6, 3)): 34, (True, (3, 4, 6, 3)): 50,
                (True, (3, 4, 23, 3)): 101, (True, (3, 8, 36, 3)): 152}
_BLOCK_KEY = re.compile(r'^layer([1-4])\.(\d+)\.(conv[1-3])\.weight$')


class BackboneKeyError(KeyError):
    """The keys of a checkpoint do not match what is asked of them; the message names them."""

    def __str__(self) -> str:  # KeyError would print the repr of the message (quotes, escaped newlines)
        return str(self.args[0])


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read (not a checkpoint, truncated, or holding non-allow-listed objects) or
    that its reader would not read (a detectron2 export not named .pkl); the message says which and what to do."""


def resnet_depth(state_dict: Mapping[str, Tensor]) -> Optional[int]:
    """The depth (18, 34, 50, 101, 152) of the ResNet whose backbone keys ``state_dict`` holds (mmpretrain /
    torchvision names, prefix stripped), read from its blocks per stage and block type; None for anything else."""
    blocks: Dict[int, set] = {}
    bottleneck = False
    for key in state_dict:
        m = _BLOCK_KEY.match(key)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
            bottleneck |= m.group(3) == 'conv3'
    counts = tuple(len(blocks.get(stage, ())) for stage in (1, 2, 3, 4))
    return RESNET_ARCHS.get((bottleneck, counts))


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


def _first_line(error: BaseException) -> str:
    """The first sentence of an exception's message, or its type name when it has none."""
    lines = str(error).strip().splitlines()
    return lines[0].split('. ')[0].rstrip('.') if lines else type(error).__name__


def resolve_checkpoint(path: str) -> str:
    """A checkpoint file from a file path or from a work dir (its ``last_checkpoint`` record)."""
    if osp.isdir(path):
        record = osp.join(path, 'last_checkpoint')
        if not osp.isfile(record):
            raise FileNotFoundError(f'{path} is a directory without a last_checkpoint file (not an mmengine work '
                                    'dir?); give a checkpoint file (.pth) or the work dir of a training run')
        with open(record) as f:
            path = f.read().strip()
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}; give a checkpoint file (.pth) or the work dir of a '
                                'training run (its last_checkpoint is used)')
    return path


def load_state_dict_file(path: str) -> Dict[str, Tensor]:
    """The model state_dict of a checkpoint file (weights-only load; mmengine's types are allow-listed)."""
    from .checkpoint_compat import allow_mmengine_checkpoints

    allow_mmengine_checkpoints()
    fix = 'give a .pth written by tools/train.py or tools/extract_backbone.py'
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r'Unsupported global: GLOBAL (\S+)', str(e))
        if found is None:  # the bytes are no (weights-only) pickle at all
            detail = re.search(r'WeightsUnpickler error:\s*(.+)', str(e))
            raise CheckpointError(f'{path} is not a PyTorch checkpoint ({detail.group(1) if detail else _first_line(e)}'
                                  f'); {fix}') from e
        raise CheckpointError(f'{path} holds objects that are not tensors ({found.group(1)}), which weights-only '
                              'loading refuses; if you trust the file, re-save its tensors: '
                              'torch.save(torch.load(PATH, weights_only=False)["state_dict"], NEW_PATH)') from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as e:  # a truncated or foreign zip / tar
        raise CheckpointError(f'{path} is not a readable PyTorch checkpoint ({_first_line(e)}; truncated or another '
                              f'kind of file?); {fix}') from e
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{path} holds a {type(checkpoint).__name__}, not a checkpoint dict; {fix}')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        keys = ', '.join(map(str, list(checkpoint)[:8]))
        raise CheckpointError(f'{path} holds no state_dict of tensors (keys: {keys}); {fix}')
    return state


def extract_backbone(checkpoint: str, network: str = 'online', fmt: str = 'mmpretrain') -> dict:
    """``{'state_dict', 'meta'}`` with the backbone of ``network`` from a pretraining checkpoint (file or work dir),
    its keys in layout ``fmt``."""
    path = resolve_checkpoint(checkpoint)
    prefix, backbone = select_backbone(load_state_dict_file(path), network)
    state_dict = convert_keys(backbone, fmt)
    meta = dict(source=osp.abspath(path), network=network, prefix=prefix, format=fmt,
                num_tensors=len(state_dict), num_parameters=sum(v.numel() for v in state_dict.values()))
    return dict(state_dict=state_dict, meta=meta)


def exported_file_content(exported: dict) -> object:
    """What :func:`save_backbone` writes for an :func:`extract_backbone` result, by its ``meta['format']``:

    - ``mmpretrain``: ``{'state_dict': {name: tensor}, 'meta': {...}}`` (``torch.save``), what StrictBackboneLoadHook
      and the probes read;
    - ``torchvision``: the plain ``{name: tensor}`` state_dict (``torch.save``), so that
      ``torchvision.models.resnet50().load_state_dict(sd, strict=False)`` takes it with only ``fc.*`` missing;
    - ``detectron2``: ``{'model': {name: numpy array}, '__author__': 'multisiam_mm', 'matching_heuristics': True}``
      (``pickle``, in a ``.pkl`` file), the layout of MoCo's ``convert-pretrain-to-detectron2.py`` that detectron2's
      ``DetectionCheckpointer`` reads.
    """
    fmt = exported['meta'].get('format', 'mmpretrain')
    if fmt == 'torchvision':
        return dict(exported['state_dict'])
    if fmt == 'detectron2':
        return {'model': {k: v.detach().cpu().numpy() for k, v in exported['state_dict'].items()},
                '__author__': 'multisiam_mm', 'matching_heuristics': True}
    return exported


def save_backbone(exported: dict, out: str) -> None:
    """Write an :func:`extract_backbone` result as :func:`exported_file_content` says (creating the folder).

    Raises:
        CheckpointError: a detectron2 export to a file name not ending in ``.pkl`` (detectron2 unpickles only those).
    """
    fmt = exported['meta'].get('format', 'mmpretrain')
    if fmt == 'detectron2' and not out.endswith('.pkl'):
        raise CheckpointError(f'detectron2 reads pickled weights only from a file name ending in .pkl; name the '
                              f'output {osp.splitext(out)[0]}.pkl')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    content = exported_file_content(exported)
    if fmt == 'detectron2':
        with open(out, 'wb') as f:
            pickle.dump(content, f, protocol=4)
    else:
        torch.save(content, out)


LOAD_HINTS = {  # how each layout is loaded (docs/transfer.md has the three-line snippets)
    'mmpretrain': "--cfg-options backbone_checkpoint=OUT with StrictBackboneLoadHook (configs/benchmarks)",
    'torchvision': "torchvision.models.resnet50().load_state_dict(torch.load(OUT), strict=False)  # fc.* missing",
    'detectron2': 'MODEL.WEIGHTS OUT with MODEL.RESNETS.STRIDE_IN_1X1 False, INPUT.FORMAT RGB (as MoCo\'s R50 configs)',
}


def summary(exported: dict, out: Optional[str] = None) -> str:
    """A one-paragraph description of an extracted backbone, with how to load it."""
    meta = exported['meta']
    lines = [f'network:    {meta["network"]} (prefix {meta["prefix"]})',
             f'format:     {meta["format"]}',
             f'tensors:    {meta["num_tensors"]}',
             f'parameters: {meta["num_parameters"]:,} (elements, buffers included)',
             f'source:     {meta["source"]}']
    if out is not None:
        lines.append(f'output:     {osp.abspath(out)}')
    if meta['format'] in LOAD_HINTS:
        lines.append(f'load:       {LOAD_HINTS[meta["format"]]}')
    return '\n'.join(lines)


def _layout_hint(unexpected: List[str], expected: set) -> str:
    """What the unexpected keys of a strict load say about the file: detectron2 names, or a whole pretraining model
    (``backbone.*``) where backbone keys were expected; '' otherwise."""
    def renamed(key: str) -> Optional[str]:
        try:
            return from_detectron2_key(key)
        except BackboneKeyError:
            return None
    if unexpected and all(renamed(k) in expected for k in unexpected):
        return ('; these are detectron2 names: extract the backbone in the mmpretrain layout '
                '(tools/extract_backbone.py CKPT OUT.pth, no --format)')
    if unexpected and all(k.startswith('backbone.') and k[len('backbone.'):] in expected for k in unexpected):
        return ('; this is a whole pretraining model: extract its backbone first '
                '(tools/extract_backbone.py CKPT OUT.pth)')
    return ''


def load_backbone_strict(module: nn.Module, state_dict: Mapping[str, Tensor], max_listed: int = 12) -> None:
    """Load ``state_dict`` into ``module`` (a backbone, or any module) requiring exactly its keys and shapes.

    Raises :class:`BackboneKeyError` before anything is copied: for two ResNets of different depths, one line
    naming both depths and the fitting one; otherwise the counts of missing keys, unexpected keys and shape
    mismatches, each with its first ``max_listed`` names.
    """
    expected = module.state_dict()
    have, want = resnet_depth(state_dict), resnet_depth(expected)
    if have is not None and want is not None and have != want:
        raise BackboneKeyError(f'the checkpoint holds a ResNet-{have} backbone but the model is a ResNet-{want}; '
                               f'use --depth {have} (in a config: model.backbone.depth={have})')
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}'
                        for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape)
    if missing or unexpected or mismatched:
        parts = [f'{title} ({len(keys)}): {", ".join(keys[:max_listed])}'
                 + (f', ... ({len(keys) - max_listed} more)' if len(keys) > max_listed else '')
                 for title, keys in (('missing keys', missing), ('unexpected keys', unexpected),
                                     ('shape mismatches', mismatched)) if keys]
        raise BackboneKeyError(f'the checkpoint does not fit the {type(module).__name__}: ' + '; '.join(parts)
                               + _layout_hint(unexpected, set(expected)))
    module.load_state_dict(state_dict, strict=True)
