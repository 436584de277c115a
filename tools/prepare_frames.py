"""Shrink an existing image folder or list file to the size a config's training views allow (issue 18, item 1).

    python tools/prepare_frames.py INPUT --out OUT_DIR --shrink-for CONFIG [--workers N] [--quality 95]

INPUT is a folder (searched recursively) or a list file (one path per line, relative ones below its folder, or
below --root). Each image is decoded as the loader decodes it (RobustLoadImage's decode_image: EXIF orientation
applied), shrunk by area averaging to the largest size at which every view of CONFIG's training pipeline keeps its
output size (multisiam_mm.datasets.frame_shrink; each frame size its own factor) and written under OUT_DIR at the
same relative path (JPEG at --quality; other formats in their own format). Frames the config allows no shrink for
are copied byte for byte. OUT_DIR gets the list file <list name>.txt and frame_shrink.json, which tools/train.py
checks against the config it trains. The input is never written: OUT_DIR may not be the input folder or lie inside
it, and no output path may be an input path.

Resumable: outputs are written through a temporary file and a rename, and a rerun skips those already there (a run
with another CONFIG or --quality into the same OUT_DIR is refused). Progress with ETA every --log-every images.
Unreadable images are skipped, listed at the end and left out of the list file.
"""
import argparse
import os
import os.path as osp
import shutil
import sys
import time
from multiprocessing import Pool
from typing import List, Optional, Tuple

import cv2

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing
from multisiam_mm.datasets import frame_shrink as fs  # noqa: E402
from multisiam_mm.datasets.image_listing import list_images  # noqa: E402
from multisiam_mm.datasets.transforms.robust_loading import ImageRejected, decode_image, read_jpeg_header  # noqa: E402
from multisiam_mm.datasets.waymo_tfrecord import format_duration  # noqa: E402

_POLICY: Optional[fs.ShrinkPolicy] = None  # per worker process
_QUALITY = 95


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='image folder (recursive) or list file')
    parser.add_argument('--out', required=True, help='output folder (never the input folder)')
    parser.add_argument('--shrink-for', required=True, metavar='CONFIG', help='config whose training views decide')
    parser.add_argument('--root', help='folder of the relative paths of a list file (default: its folder)')
    parser.add_argument('--list-name', default='frames', help='list file <out>/<name>.txt (default: %(default)s)')
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1, help='processes (default: all CPUs)')
    parser.add_argument('--quality', type=int, default=95, help='JPEG quality of shrunk frames (default: 95)')
    parser.add_argument('--log-every', type=int, default=1000, help='images between progress lines')
    return parser.parse_args(argv)


def read_inputs(source: str, root: Optional[str]) -> Tuple[str, List[str]]:
    """(root folder, relative image paths) of a folder or a list file."""
    if osp.isdir(source):
        base = osp.abspath(source)
        return base, [osp.relpath(p, base) for p in list_images(source)]
    base = osp.abspath(root or osp.dirname(source))
    with open(source, encoding='utf-8') as f:
        lines = [line.strip() for line in f if line.strip() and not line.lstrip().startswith('#')]
    relative = [osp.relpath(p, base) if osp.isabs(p) else p for p in lines]
    outside = [p for p in relative if p.startswith('..')]
    if outside:
        raise ValueError(f'{len(outside)} listed paths lie outside {base} (first: {outside[0]}); give --root')
    return base, relative


def _init(config: str, quality: int) -> None:
    global _POLICY, _QUALITY
    _POLICY, _QUALITY = fs.ShrinkPolicy.from_config(config), quality


def prepare_one(task: Tuple[str, str]) -> Tuple[str, Optional[Tuple[int, int]], Optional[fs.ShrinkPlan], str]:
    """Shrink (or copy) one image: (relative path, original (H, W) or None, plan, '' or the reason it failed)."""
    src, dst = task
    try:
        with open(src, 'rb') as f:
            data = f.read()
        img = decode_image(data)
    except (OSError, ImageRejected) as err:
        return src, None, None, str(err)
    plan = _POLICY.plan(img.shape[:2])
    os.makedirs(osp.dirname(dst), exist_ok=True)
    tmp = f'{dst}.{os.getpid()}.tmp'
    if plan.shrinks:
        ext = osp.splitext(dst)[1].lower()
        params = [cv2.IMWRITE_JPEG_QUALITY, _QUALITY] if ext in ('.jpg', '.jpeg') else []
        ok, buf = cv2.imencode(ext if ext in ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp') else '.png',
                               fs.shrink_image(img, plan.stored), params)
        if not ok:
            return src, None, None, 'encoding failed'
        with open(tmp, 'wb') as f:
            f.write(buf.tobytes())
    else:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return src, img.shape[:2], plan, ''


def main(argv: Optional[List[str]] = None) -> None:
    """Shrink every image of the input; exit 2 with one line on bad arguments."""
    args = parse_args(argv)

    def fail(message: str) -> None:
        print(f'error: {message}', file=sys.stderr)
        sys.exit(2)

    if not osp.exists(args.input):
        fail(f'input {args.input!r} does not exist')
    if not osp.isfile(args.shrink_for):
        fail(f'--shrink-for config {args.shrink_for!r} does not exist')
    try:
        base, relative = read_inputs(args.input, args.root)
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
    out = osp.abspath(args.out)
    if osp.isdir(args.input) and (out + os.sep).startswith(base + os.sep):
        fail(f'--out {args.out} is inside the input folder {base} (a rerun would read the outputs as inputs); '
             'give a folder outside it')
    inputs = {osp.normpath(osp.join(base, r)) for r in relative}
    clash = next((r for r in relative if osp.normpath(osp.join(out, r)) in inputs), None)
    if clash:
        fail(f'output {osp.join(out, clash)} would overwrite an input; give --out outside the input tree')
    policy = fs.ShrinkPolicy.from_config(args.shrink_for)
    previous = fs.read_record(out)
    if previous and (previous.get('config') != args.shrink_for or previous.get('jpeg_quality') != args.quality):
        fail(f'{out} holds frames shrunk for {previous.get("config")} at quality {previous.get("jpeg_quality")}; '
             'give another --out or remove it')
    os.makedirs(out, exist_ok=True)
    fs.write_record(out, policy.record(args.quality))  # marks the folder's settings for a resumed run
    print(f'{len(relative)} images in {base}; shrink for {args.shrink_for}' +
          (f' (allows no shrink: {policy.reason})' if policy.reason else ''), flush=True)

    earlier = [r for r in relative if osp.exists(osp.join(out, r))]
    todo = [(osp.join(base, r), osp.join(out, r)) for r in relative if not osp.exists(osp.join(out, r))]
    done_before = len(earlier)
    if done_before:
        print(f'{done_before} done earlier, skipped', flush=True)
        for r in earlier:  # the record's per-size table covers the skipped images too
            try:
                with open(osp.join(base, r), 'rb') as f:
                    data = f.read()
                header = read_jpeg_header(data)  # upright (H, W) without decoding; other formats are decoded
                policy.plan(header[0] if header else decode_image(data).shape[:2])
            except (OSError, ImageRejected):
                pass
    failed: List[Tuple[str, str]] = []
    start, count = time.perf_counter(), 0
    with Pool(max(1, args.workers), initializer=_init, initargs=(args.shrink_for, args.quality)) as pool:
        for src, hw, plan, reason in pool.imap_unordered(prepare_one, todo, chunksize=16):
            count += 1
            if reason:
                failed.append((src, reason))
            else:
                policy.plans.setdefault(tuple(hw), plan)
            if count % args.log_every == 0 or count == len(todo):
                rate = count / (time.perf_counter() - start)
                print(f'[{count}/{len(todo)}] {rate:.1f} images/s, ETA {format_duration((len(todo) - count) / rate)}',
                      flush=True)
    fs.write_record(out, policy.record(args.quality))
    bad = {osp.relpath(src, base) for src, _ in failed}
    kept = [r for r in relative if r not in bad]
    with open(osp.join(out, f'{args.list_name}.txt'), 'w', encoding='utf-8') as f:
        f.writelines(f'{r}\n' for r in kept)
    for line in fs.describe_plans(args.shrink_for, policy.plans):
        print(line)
    for src, reason in failed:
        print(f'  skipped {src}: {reason}')
    print(f'summary: {len(kept)} images in {out} ({count - len(failed)} written now, {done_before} earlier, '
          f'{len(failed)} unreadable), list file {osp.join(out, args.list_name + ".txt")}, record '
          f'{osp.join(out, fs.RECORD_NAME)}, {format_duration(time.perf_counter() - start)}')


if __name__ == '__main__':
    main()
