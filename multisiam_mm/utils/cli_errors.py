"""One-line errors for the command-line tools: what is wrong and how to fix it, exit status 2, no traceback.

The tools (tools/*.py) run their ``main`` through :func:`run_cli`. A :class:`UserError`, or one of the errors that
our loaders raise for a user's input (a missing checkpoint or list file, a file that is no checkpoint, a backbone of
another architecture), is printed as ``error: <message>`` on one line of stderr and the process exits with status 2,
argparse's status for a bad command line. Any other exception is a bug and keeps its traceback; so does a user
error when the environment variable ``MULTISIAM_TRACEBACK=1`` is set.

Checks made before a run starts, so that a mistake costs a second instead of a Runner build and a 500-line log:
:func:`resolve_config` (a config path or name, with the close names when there is none) and
:func:`check_data_sources` (the list files and image folders that the config's datasets read).
"""
import difflib
import glob
import os
import os.path as osp
import sys
from typing import Callable, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar

from .backbone_export import BackboneKeyError, CheckpointError

EXIT_USAGE = 2
T = TypeVar('T')


class UserError(Exception):
    """A problem with what the user gave (a path, a name, a flag); the message names it and the fix."""


# What a tool reports in one line instead of a traceback. FileNotFoundError is included because every loader of ours
# raises it with the path and the fix for a file the user named (checkpoint, list file, image folder).
USER_ERRORS = (UserError, CheckpointError, BackboneKeyError, FileNotFoundError)


def one_line(message: str, limit: int = 600) -> str:
    """``message`` on one line (line breaks become '; ', runs of spaces one space), cut to ``limit`` characters."""
    text = '; '.join(' '.join(part.split()) for part in str(message).splitlines() if part.strip())
    return text if len(text) <= limit else text[:limit - 3] + '...'


def run_cli(main: Callable[..., T], *args, **kwargs) -> T:
    """Call ``main``; on a user error print ``error: <one line>`` to stderr and exit with status 2."""
    try:
        return main(*args, **kwargs)
    except USER_ERRORS as e:
        if os.environ.get('MULTISIAM_TRACEBACK') == '1':
            raise
        print(f'error: {one_line(e)}', file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)


def list_configs(config_root: str, repo_root: str) -> List[str]:
    """All config files under ``config_root`` (``_base_`` fragments excluded), as paths relative to ``repo_root``,
    sorted."""
    paths = glob.glob(osp.join(config_root, '**', '*.py'), recursive=True)
    paths = [p for p in paths if '_base_' not in osp.relpath(p, config_root).split(osp.sep)]
    return sorted(osp.relpath(p, repo_root) for p in paths)


def close_configs(config: str, candidates: Sequence[str], n: int = 5) -> List[str]:
    """The ``candidates`` closest to ``config`` by name (difflib), best first: compared as whole relative paths
    and by file name, so a typo in either is found."""
    by_name = {}
    for path in candidates:
        by_name.setdefault(osp.splitext(osp.basename(path))[0], []).append(path)
    stem = osp.splitext(osp.basename(config))[0]
    found = difflib.get_close_matches(config, candidates, n=n, cutoff=0.7)
    found += [p for name in difflib.get_close_matches(stem, list(by_name), n=n, cutoff=0.7) for p in by_name[name]]
    return list(dict.fromkeys(found))[:n]


def resolve_config(config: str, config_root: str, repo_root: Optional[str] = None) -> str:
    """The config file meant by ``config``: an existing path, a path relative to ``repo_root`` (default: the
    parent of ``config_root``), or the file name of exactly one config under ``config_root`` (``.py`` optional).

    Raises:
        UserError: no such config; the message lists the close names.
    """
    repo_root = repo_root or osp.dirname(osp.abspath(config_root))
    for path in (config, osp.join(repo_root, config)):
        if osp.isfile(path):
            return path
    configs = list_configs(config_root, repo_root)
    name = osp.basename(config) if config.endswith('.py') else osp.basename(config) + '.py'
    same_name = [p for p in configs if osp.basename(p) == name]
    if len(same_name) == 1:
        return osp.join(repo_root, same_name[0])
    close = same_name or close_configs(config, configs)
    hint = (f'did you mean {" or ".join(close)}?' if close else
            f'no config has a similar name; the {len(configs)} configs are under '
            f'{osp.relpath(config_root, repo_root)}/')
    raise UserError(f'config {config!r} not found; {hint}')


def _datasets(cfg: Mapping, where: str) -> Iterator[Tuple[str, Mapping]]:
    """(config path, dataset dict) of every dataset in a dataset config, wrappers (``dataset`` / ``datasets``)
    included."""
    yield where, cfg
    if isinstance(cfg.get('dataset'), Mapping):
        yield from _datasets(cfg['dataset'], f'{where}.dataset')
    for i, child in enumerate(cfg.get('datasets') or []):
        if isinstance(child, Mapping):
            yield from _datasets(child, f'{where}.datasets[{i}]')


LIST_FILE_FIX = ('create it with the frame extraction tool (tools/extract_waymo_frames.py, docs/data_ingestion.md), '
                 'or train on your own images: tools/train.py CONFIG --images DIR_OR_LIST')


def check_data_sources(cfg: Mapping, loaders: Sequence[str] = ('train_dataloader',)) -> None:
    """Check that the list files (``ann_file``) and the image folders of the datasets that ``loaders`` read exist.

    Paths are resolved as mmengine's ``BaseDataset`` resolves them (a relative ``ann_file`` below ``data_root``).
    Only a dataset of type ``UnlabeledImageDataset`` without ``ann_file`` has its image folder checked.

    Raises:
        UserError: a list file or an image folder does not exist; the message says how to make one.
    """
    for loader in loaders:
        dataset = (cfg.get(loader) or {}).get('dataset')
        if not isinstance(dataset, Mapping):
            continue
        for where, ds in _datasets(dataset, f'{loader}.dataset'):
            data_root = ds.get('data_root') or ''
            ann_file = ds.get('ann_file') or ''
            if isinstance(ann_file, str) and ann_file:
                path = ann_file if osp.isabs(ann_file) else osp.join(data_root, ann_file)
                if not osp.isfile(path):
                    raise UserError(f'list file {path} ({where}.ann_file) does not exist; {LIST_FILE_FIX}')
            elif ds.get('type') == 'UnlabeledImageDataset':
                prefix = ds.get('data_prefix') or ''
                prefix = prefix.get('img_path', '') if isinstance(prefix, Mapping) else prefix
                folder = osp.join(data_root, prefix)
                if folder and not osp.isdir(folder):
                    raise UserError(f'image folder {folder} ({where}.data_root / data_prefix) does not exist; '
                                    'give an existing folder of images: tools/train.py CONFIG --images DIR_OR_LIST')


def check_file(path: Optional[str], what: str, fix: str) -> None:
    """Raise :class:`UserError` ``<what> not found: <path>; <fix>`` when ``path`` is given and is not a file."""
    if path and not osp.isfile(path):
        raise UserError(f'{what} not found: {path}; {fix}')
