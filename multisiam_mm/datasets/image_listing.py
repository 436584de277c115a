"""The one way this project finds image files: in a folder tree, in a list file, or named directly.

Every reader uses :func:`list_images` or :func:`scan_image_folder`: the pretraining dataset (UnlabeledImageDataset),
``tools/train.py --images`` and ``tools/demo.py --images``, ClusterMapHook, tools/visualize_clusters.py,
tools/eval_object_discovery.py and the benchmarks. The rules, the same everywhere:

- a folder is scanned recursively, symlinked files and folders followed (a folder reached twice through links, or a
  link to an ancestor, is scanned once), sorted by path;
- a file is an image when its name ends with one of :data:`IMAGE_EXTENSIONS`, in any case (``.JPG``, ``.Png``);
  other files (``.txt``, ``.json``, videos, label PNGs are not told apart: keep labels out of the image tree) are
  ignored, as are hidden files and folders (names starting with ``.``);
- the files are not opened here: a broken link, an empty or a corrupt file is listed and left to the robust loader
  (multisiam_mm.datasets.transforms.robust_loading), which rejects and quarantines it;
- a list file holds one path per line, blank lines and ``#`` comments skipped, relative paths taken from the list
  file's folder (``list_images``) or from the dataset's image folder (``iter_image_list``, mmengine's
  ``data_root`` / ``data_prefix`` convention).
"""
import os
import os.path as osp
from typing import Dict, Iterator, List, MutableMapping, Optional, Sequence, Union

# What RobustLoadImage decodes (Pillow and OpenCV): JPEG, PNG, BMP, WebP and TIFF.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')


def is_image_name(name: str, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> bool:
    """Whether a file name (or path) ends with one of ``extensions``, case-insensitively, and is not hidden."""
    base = osp.basename(name)
    return not base.startswith('.') and base.lower().endswith(tuple(e.lower() for e in extensions))


def scan_image_folder(folder: str, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> List[str]:
    """All image files under ``folder`` (recursive, following symlinks, each real folder once), sorted.

    Raises:
        FileNotFoundError: ``folder`` is not a directory.
        ValueError: no image was found.
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(f'image folder {folder!r} does not exist or is not a folder')
    paths, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = osp.realpath(dirpath)
        if real in seen:  # a link loop, or one folder linked twice
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith('.')]
        paths.extend(osp.join(dirpath, name) for name in filenames if is_image_name(name, extensions))
    if not paths:
        raise ValueError(f'no image files ({", ".join(extensions)}, any case) found under {folder!r} (hidden files '
                         'and folders are skipped)')
    return sorted(paths)


def iter_image_list(list_file: str, prefix: str = '') -> Iterator[str]:
    """The image paths of a list file, one per line, streamed (the files themselves are not checked).

    Blank lines and lines starting with '#' are skipped; surrounding whitespace is stripped; relative paths are
    joined to ``prefix`` (absolute paths are kept).

    Raises:
        FileNotFoundError: ``list_file`` does not exist.
    """
    if not osp.isfile(list_file):
        raise FileNotFoundError(f'list file {list_file!r} does not exist')
    with open(list_file, encoding='utf-8') as f:
        for line in f:
            path = line.strip()
            if path and not path.startswith('#'):
                yield osp.join(prefix, path)


def list_images(sources: Union[str, Sequence[str]], limit: Optional[int] = None,
                extensions: Sequence[str] = IMAGE_EXTENSIONS) -> List[str]:
    """Image paths from folders (:func:`scan_image_folder`), image files (kept as given) and list files (their
    lines, relative ones from the list file's folder), in the order of ``sources``; at most ``limit``.

    Raises:
        FileNotFoundError: a source does not exist, or a list file lists nothing.
        ValueError: a folder holds no image.
    """
    paths: List[str] = []
    for src in [sources] if isinstance(sources, str) else sources:
        if osp.isdir(src):
            paths += scan_image_folder(src, extensions)
        elif is_image_name(src, extensions):
            paths.append(src)
        elif osp.isfile(src):
            listed = list(iter_image_list(src, osp.dirname(src)))
            if not listed:
                raise FileNotFoundError(f'list file {src!r} lists no image (only blank or # comment lines)')
            paths += listed
        else:
            raise FileNotFoundError(f'{src!r} is neither a folder, an image file nor a list file')
        if limit and len(paths) >= limit:
            break
    return paths[:limit] if limit else paths


def dataset_overrides(images: str) -> Dict[str, str]:
    """The ``train_dataloader.dataset`` fields that make an UnlabeledImageDataset read ``images``: every image
    under a folder (``ann_file`` emptied), or the lines of a list file (relative paths from its folder).

    ``tools/train.py --images`` and ``tools/demo.py --images`` apply them; ``mim train`` users pass the same as
    ``--cfg-options`` (docs/own_data.md).

    Raises:
        FileNotFoundError: ``images`` is neither a folder nor a file.
        ValueError: ``images`` is one image file (give its folder or a list file).
    """
    path = osp.abspath(images)
    if osp.isdir(path):
        return dict(data_root=path, data_prefix='', ann_file='')
    if not osp.isfile(path):
        raise FileNotFoundError(f'--images {images}: no such folder or list file; give a folder of images (searched '
                                'recursively) or a text file with one image path per line')
    if is_image_name(path):
        raise ValueError(f'--images {images}: one image file is not a training set; give its folder or a list file '
                         'with one image path per line')
    return dict(data_root=osp.dirname(path), data_prefix='', ann_file=path)


def use_images(cfg: MutableMapping, images: str) -> Dict[str, str]:
    """Point the config's training dataset (an UnlabeledImageDataset) at ``images``, a folder or a list file
    (:func:`dataset_overrides`), in place; returns the fields set. Nothing is written anywhere.

    Raises:
        FileNotFoundError, ValueError: as :func:`dataset_overrides`.
        ValueError: also when the training dataset is of another type (a wrapper, a TFRecord reader).
    """
    dataset = cfg['train_dataloader']['dataset']
    if dataset.get('type') != 'UnlabeledImageDataset':
        raise ValueError(f'--images needs train_dataloader.dataset of type UnlabeledImageDataset; this config has '
                        f'{dataset.get("type")!r}: set its own data fields with --cfg-options')
    overrides = dataset_overrides(images)
    dataset.update(overrides)
    return overrides
