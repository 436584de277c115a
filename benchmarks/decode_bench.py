"""Pairs/s of view-pair loading on high-resolution JPEGs, one process: reduced DCT decoding against full decoding.

Pipelines, each turning a file into two views of --size pixels:
  (a) mmpretrain, as BYOL's pipeline: LoadImageFromFile + MultiView of two RandomResizedCrop(size, scale (0.08, 1),
      bicubic, cv2), built from mmpretrain's registry;
  (b) ours, full resolution: RobustLoadImage + IoUPairCrop(size, iou_thr);
  (c) ours, reduced decoding: RobustLoadImage(reduced_decode=True) + IoUPairCrop(size, iou_thr): each JPEG decoded
      at the coarsest DCT scale (1/2, 1/4, 1/8) at which both views keep at least size pixels per side.
A second table times decoding alone at each DCT scale: OpenCV, RobustLoadImage's decoder (decode_image: OpenCV for
complete grey / colour JPEGs, else Pillow) and its Pillow path.
All steps are interleaved (the order rotates every repetition) so that they share the machine's load; each runs
over every frame once per repetition. Speed-ups are the median over repetitions of the per-repetition ratio. OpenCV
runs single-threaded, as in mmengine's data workers (env_cfg opencv_num_threads=0).

Frames: --images DIR (its .jpg / .jpeg files), or synthetic street scenes (multisiam_mm.datasets.synthetic_streets,
whose sensor noise gives the texture of a real frame, about 1 bit/pixel at quality 90) written at --quality to a
temporary folder; --blur smooths them first (lower bit rate). The gain depends on the bit rate: DCT scaling saves
inverse DCT, upsampling and colour conversion, not the entropy decoding of every coefficient, which grows with it.

    python benchmarks/decode_bench.py --frames 16 --repeats 10
"""
import argparse
import cProfile
import io
import math
import os
import os.path as osp
import pstats
import tempfile
import time
from collections import Counter
from functools import partial
from typing import Callable, Dict, List, Sequence

import cv2
import numpy as np
from mmcv.transforms import Compose
from mmengine.registry import init_default_scope
from mmpretrain.registry import TRANSFORMS
from PIL import Image

from multisiam_mm.datasets.image_listing import list_images
from multisiam_mm.datasets.synthetic_streets import generate_scene
from multisiam_mm.datasets.transforms import IoUPairCrop, RobustLoadImage, decode_image, robust_loading
from multisiam_mm.datasets.transforms.robust_loading import OPENCV_DECODE_FLAGS

PIPELINES = ('(a) mmpretrain LoadImageFromFile + 2 x RandomResizedCrop',
             '(b) RobustLoadImage + IoUPairCrop, full resolution',
             '(c) RobustLoadImage(reduced_decode=True) + IoUPairCrop')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', help='folder of JPEG frames, searched recursively (default: synthetic scenes)')
    parser.add_argument('--frames', type=int, default=16, help='synthetic frames to write')
    parser.add_argument('--width', type=int, default=1920, help='synthetic frame width')
    parser.add_argument('--height', type=int, default=1280, help='synthetic frame height')
    parser.add_argument('--quality', type=int, default=90, help='JPEG quality of the synthetic frames')
    parser.add_argument('--blur', type=float, default=0.0,
                        help='Gaussian sigma (pixels) applied to the synthetic frames before encoding (0: none)')
    parser.add_argument('--size', type=int, default=224, help='output side of each view')
    parser.add_argument('--iou-thr', type=float, default=0.5, help="IoUPairCrop's threshold")
    parser.add_argument('--repeats', type=int, default=10, help='interleaved repetitions per pipeline')
    parser.add_argument('--profile', action='store_true', help='also print the top functions of one cProfile pass')
    parser.add_argument('--core', type=int, default=-1, help='CPU core to pin to (-1: no pinning)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def write_synthetic_frames(folder: str, num: int, width: int, height: int, quality: int, blur: float) -> List[str]:
    """``num`` synthetic street scenes, blurred by a Gaussian of sigma ``blur`` if > 0, as JPEGs in ``folder``."""
    paths = []
    for seed in range(num):
        rgb = generate_scene(seed, width, height)[0]
        rgb = cv2.GaussianBlur(rgb, (0, 0), blur) if blur > 0 else rgb
        path = osp.join(folder, f'{seed:06d}.jpg')
        cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        paths.append(path)
    return paths


def build_pipelines(size: int, iou_thr: float) -> Dict[str, Callable[[dict], dict]]:
    """The three pipelines of the module doc, by name."""
    init_default_scope('mmpretrain')  # MultiView builds its transforms from the default scope's registry
    rrc = dict(type='RandomResizedCrop', scale=size, crop_ratio_range=(0.08, 1.0), interpolation='bicubic',
               backend='cv2')
    crop = dict(size=size, iou_thr=iou_thr, interpolation='bicubic', backend='cv2')
    return {
        PIPELINES[0]: Compose([TRANSFORMS.build(dict(type='LoadImageFromFile')),
                               TRANSFORMS.build(dict(type='MultiView', num_views=[1, 1], transforms=[[rrc], [rrc]]))]),
        PIPELINES[1]: Compose([RobustLoadImage(), IoUPairCrop(**crop)]),
        PIPELINES[2]: Compose([RobustLoadImage(reduced_decode=True), IoUPairCrop(**crop)]),
    }


def run_pass(pipeline: Callable[[dict], dict], paths: Sequence[str], size: int, factors: Counter) -> None:
    """Make one view pair of every frame; count the decode factors of the pairs in ``factors``."""
    for path in paths:
        out = pipeline(dict(img_path=path))
        assert [v.shape[:2] for v in out['img']] == [(size, size)] * 2, path
        factors[out.get('decode_factor', 1)] += 1


def decode_pass(decode: Callable[..., np.ndarray], frames: Sequence[bytes], factor: int) -> None:
    """Decode every frame (bytes in memory) at 1/factor."""
    for data in frames:
        decode(data, factor=factor)


def cv2_decode(data: bytes, factor: int) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), OPENCV_DECODE_FLAGS[factor])


def timed_interleaved(steps: Dict[str, Callable[[], None]], repeats: int) -> Dict[str, np.ndarray]:
    """Seconds of each step in each repetition (repeats,), after a warm-up; the order rotates every repetition."""
    names = list(steps)
    seconds: Dict[str, List[float]] = {name: [] for name in names}
    for name in names:  # warm-up: imports, allocator, page cache
        steps[name]()
    for rep in range(repeats):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            start = time.perf_counter()
            steps[name]()
            seconds[name].append(time.perf_counter() - start)
    return {name: np.array(secs) for name, secs in seconds.items()}


def profile_pass(step: Callable[[], None], top: int = 12) -> str:
    """The ``top`` functions by own time of one run of ``step``, as pstats prints them."""
    profiler = cProfile.Profile()
    profiler.runcall(step)
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats('tottime').print_stats(top)
    return stream.getvalue()


def factor_shares(factors: Counter) -> str:
    """'1/1 a% · 1/2 b% · 1/4 c% · 1/8 d%' of the pairs, by decode scale."""
    total = sum(factors.values())
    return ' · '.join(f'1/{f} {100 * factors[f] / total:.0f}%' for f in (1, 2, 4, 8))


def main() -> None:
    args = parse_args()
    if args.core >= 0:
        os.sched_setaffinity(0, {args.core})
    cv2.setNumThreads(0)
    np.random.seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        if args.images:
            try:
                paths = list_images(args.images, extensions=('.jpg', '.jpeg'))
            except (FileNotFoundError, ValueError) as err:
                raise SystemExit(f'--images: {err}') from None
            source = f'{len(paths)} JPEGs from {args.images}'
        else:
            paths = write_synthetic_frames(tmp, args.frames, args.width, args.height, args.quality, args.blur)
            blurred = f', blurred (sigma {args.blur:g} px)' if args.blur > 0 else ''
            source = (f'{len(paths)} synthetic {args.width}x{args.height} street scenes{blurred}, JPEG quality '
                      f'{args.quality}')
        if not paths:
            raise SystemExit(f'no JPEG files in {args.images}')
        frames = [open(p, 'rb').read() for p in paths]
        bpp = 8 * sum(map(len, frames)) / sum(math.prod(Image.open(p).size) for p in paths)
        pipelines = build_pipelines(args.size, args.iou_thr)
        factors = {name: Counter() for name in pipelines}
        steps = {name: partial(run_pass, pipeline, paths, args.size, factors[name])
                 for name, pipeline in pipelines.items()}
        decoders = {'cv2.imdecode': cv2_decode, 'decode_image (RobustLoadImage)': decode_image,
                    'Pillow (decode_image fallback)': robust_loading._pillow_bgr}
        steps.update({(lib, f): partial(decode_pass, decode, frames, f)
                      for lib, decode in decoders.items() for f in OPENCV_DECODE_FLAGS})
        seconds = timed_interleaved(steps, args.repeats)
        profiles = {name: profile_pass(steps[name]) for name in pipelines} if args.profile else {}

    load = os.getloadavg()
    print(f'{source} ({bpp:.2f} bits/pixel), two {args.size}x{args.size} views per frame, iou_thr={args.iou_thr}, '
          f'one process, {args.repeats} interleaved repetitions x {len(paths)} frames; load average '
          f'{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min) on {os.cpu_count()} cores\n')
    print('| pipeline | pairs/s | ms/pair | speed-up vs (a) | decode scale of the pairs |')
    print('|---|---:|---:|---:|---|')
    base = seconds[PIPELINES[0]]
    for name in pipelines:
        rate = len(paths) * args.repeats / seconds[name].sum()
        ratio = np.median(base / seconds[name])
        print(f'| {name} | {rate:.1f} | {1e3 / rate:.2f} | {ratio:.2f}x | {factor_shares(factors[name])} |')
    print('\n| decode only, ms/frame (x faster than 1/1) | ' + ' | '.join(f'1/{f}' for f in OPENCV_DECODE_FLAGS) + ' |')
    print('|---|' + '---:|' * len(OPENCV_DECODE_FLAGS))
    for lib in decoders:
        full = seconds[lib, 1]
        cells = [f'{1e3 * secs.mean() / len(frames):.2f} ({np.median(full / secs):.2f}x)'
                 for secs in (seconds[lib, f] for f in OPENCV_DECODE_FLAGS)]
        print(f'| {lib} | ' + ' | '.join(cells) + ' |')
    for name, text in profiles.items():
        print(f'\ncProfile of one pass of {name}, by own time:\n{text}')


if __name__ == '__main__':
    main()
