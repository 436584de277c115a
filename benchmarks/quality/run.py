"""Quality benchmark: pretraining methods compared at equal compute on real street images (docs/benchmarks.md).

For every arm (random init, BYOL, BYOL + IoU, MultiSiam RoI, MultiSiam offset + self-attention, DenseSiam, Odin;
benchmarks/quality/arms.py) and seed, the stages are:

  pretrain  tools/train.py on the unlabeled images (ResNet-18, 128 px views, batch 16, equal iterations)
  linear    tools/probe_segmentation.py --mode linear   (frozen backbone + 1x1 conv, mIoU on the val split)
  finetune  tools/probe_segmentation.py --mode finetune (short FCN fine-tune, mIoU on the val split)
  abo       class-merged ABO of K-means segments of the frozen last-stage features against the val labels

Each stage writes <work-dir>/<arm>/seed<S>/<stage>.json when it finishes; a rerun skips finished stages and resumes
an interrupted pretraining from its last checkpoint, so arms can run separately (--arms) and a killed run goes on
where it stopped. Progress, per-stage wall time and an ETA are printed; each stage's full log is in its folder.
At the end (and with --report-only) the table is printed and saved as <work-dir>/results.md, results.json and
results.png (mean and spread over seeds).

Example (IDD-20k lite: pretrain on train + test images without labels; probes train on train, score on val):

    python benchmarks/quality/run.py --work-dir work_dirs/quality \\
        --pretrain-images ../shared/data/idd20k_lite/leftImg8bit/train ../shared/data/idd20k_lite/leftImg8bit/test \\
        --seg-root ../shared/data/idd20k_lite --img-dir leftImg8bit --ann-dir gtFine \\
        --img-suffix _image.jpg --seg-suffix _label.png --scale 320 227 \\
        --classes drivable non-drivable living-things vehicles road-side-objects far-objects sky

--budget B scales pretraining and probe iterations (and the images scored by ABO) by B, e.g. --budget 20 on a GPU.
Defaults at budget 1: 200 pretraining, 300 linear-probe and 150 fine-tune iterations, two seeds.
"""
import argparse
import json
import math
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from arms import ARMS  # noqa: E402
from report import write_report  # noqa: E402

from multisiam_mm.datasets.image_listing import list_images  # noqa: E402
from multisiam_mm.utils.scalars import loss_curve  # noqa: E402

STAGES = ('pretrain', 'linear', 'finetune', 'abo')
# Seconds per unit of work before this run has measured any (2 CPU cores): used for the first ETA only.
PRIOR_SECONDS = dict(pretrain_iter=1.0, linear_iter=0.15, finetune_iter=0.4, probe_fixed=50.0, abo_image=0.06)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line arguments (``--help`` describes them)."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--work-dir', default='work_dirs/quality', help='stage outputs, logs and results')
    p.add_argument('--pretrain-images', nargs='+', help='folders (searched recursively) or list files of the '
                                                        'unlabeled pretraining images')
    p.add_argument('--seg-root', help='labelled segmentation folder for the probes and ABO')
    p.add_argument('--img-dir', default='images', help='image tree under --seg-root holding train/ and val/')
    p.add_argument('--ann-dir', default='semantic', help='label tree under --seg-root holding train/ and val/')
    p.add_argument('--img-suffix', default='.jpg', help='image file-name ending of the segmentation folder')
    p.add_argument('--seg-suffix', default='.png', help='label file-name ending (same stem as the image)')
    p.add_argument('--classes', nargs='+', help='class names in label order (else --seg-root/classes.json)')
    p.add_argument('--ignore-index', type=int, default=255, help='unlabelled pixel value')
    p.add_argument('--scale', type=int, nargs=2, default=[320, 224], help='probe and ABO image size W H')
    p.add_argument('--arms', nargs='+', default=list(ARMS), choices=list(ARMS), help='arms to run')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1], help='seeds (one run of every arm per seed)')
    p.add_argument('--stages', nargs='+', default=list(STAGES), choices=STAGES, help='stages to run')
    p.add_argument('--budget', type=float, default=1.0, help='scales iterations and ABO images (1.0: ~90 min on '
                                                             '2 CPU cores)')
    p.add_argument('--pretrain-iters', type=int, default=200, help='pretraining iterations at budget 1')
    p.add_argument('--linear-iters', type=int, default=300, help='linear probe iterations at budget 1')
    p.add_argument('--finetune-iters', type=int, default=150, help='FCN fine-tune iterations at budget 1')
    p.add_argument('--probe-crop', type=int, default=160, help='probe training crop (square)')
    p.add_argument('--abo-images', type=int, default=250, help='val images scored by ABO at budget 1 (at most '
                                                             'all of them)')
    p.add_argument('--abo-ks', type=int, nargs='+', default=[1, 2, 4, 8, 16], help='K of the K-means runs')
    p.add_argument('--workers', type=int, default=2, help='data loader workers of every stage')
    p.add_argument('--list', action='store_true', help='print the plan and what is done, run nothing')
    p.add_argument('--report-only', action='store_true', help='only aggregate the finished stages')
    args = p.parse_args(argv)
    if not (args.list or args.report_only):
        needed = {'pretrain': args.pretrain_images, 'linear': args.seg_root, 'finetune': args.seg_root,
                  'abo': args.seg_root}
        pretrained = any(ARMS[arm].config for arm in args.arms)
        for stage in args.stages:
            if not needed[stage] and (stage != 'pretrain' or pretrained):
                p.error(f'stage {stage} needs --{"pretrain-images" if stage == "pretrain" else "seg-root"}')
    if args.budget <= 0:
        p.error('--budget must be positive')
    return args


def scaled(args: argparse.Namespace) -> Dict[str, int]:
    """Iterations and image counts at ``args.budget``."""
    return dict(pretrain_iters=max(2, round(args.pretrain_iters * args.budget)),
                linear_iters=max(2, round(args.linear_iters * args.budget)),
                finetune_iters=max(2, round(args.finetune_iters * args.budget)),
                abo_images=max(1, round(args.abo_images * args.budget)))


def stage_dir(work_dir: str, arm: str, seed: int) -> str:
    return osp.join(work_dir, arm, f'seed{seed}')


def result_file(work_dir: str, arm: str, seed: int, stage: str) -> str:
    return osp.join(stage_dir(work_dir, arm, seed), f'{stage}.json')


def plan(args: argparse.Namespace) -> List[Tuple[str, int, str]]:
    """(arm, seed, stage) in run order: seed-major, so a short run still gets every arm of the first seed."""
    return [(arm, seed, stage) for seed in args.seeds for arm in args.arms for stage in args.stages
            if not (stage == 'pretrain' and ARMS[arm].config is None)]


def collect_images(sources: Sequence[str]) -> List[str]:
    """Absolute paths of the images under folders (recursive) or in list files, sorted within each folder
    (multisiam_mm.datasets.image_listing.list_images)."""
    paths: List[str] = []
    for src in sources:
        try:
            paths += [osp.abspath(p) for p in list_images(src)]
        except (FileNotFoundError, ValueError) as err:
            raise FileNotFoundError(f'--pretrain-images: {err}') from None
    return paths


def write_json(path: str, obj: dict) -> None:
    """Write ``obj`` atomically (a kill leaves either the old file or none, never half a file)."""
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def run_logged(cmd: List[str], log_path: str, tag: str, progress_marks: Sequence[str]) -> None:
    """Run ``cmd`` from the repository root with its output in ``log_path``; echo its progress lines (those
    containing one of ``progress_marks``) prefixed with ``tag``. Raises RuntimeError with the log's tail on failure."""
    with open(log_path, 'a') as log:
        log.write(f'$ {" ".join(cmd)}\n')
        log.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1)
        for line in proc.stdout:
            log.write(line)
            log.flush()  # the log can be followed (tail -f) while the stage runs
            if any(mark in line for mark in progress_marks):
                print(f'    {tag} {line.strip()[-150:]}', flush=True)
        code = proc.wait()
    if code:
        with open(log_path) as f:
            tail = ''.join(f.readlines()[-25:])
        raise RuntimeError(f'{tag} exited with {code}; last lines of {log_path}:\n{tail}')


def last_losses(log_dir_root: str) -> Dict[str, float]:
    """First and last logged total loss of an mmengine work dir, over all its runs (a resumed run has several)."""
    runs = sorted(d for d in os.listdir(log_dir_root) if osp.isfile(osp.join(log_dir_root, d, 'vis_data',
                                                                                 'scalars.json')))
    losses = [loss for run in runs for _, loss in loss_curve(osp.join(log_dir_root, run))]
    return dict(first_loss=losses[0], last_loss=losses[-1]) if losses else {}


def run_pretrain(args: argparse.Namespace, arm: str, seed: int, image_list: str) -> dict:
    """Pretrain one arm with tools/train.py (resuming an interrupted run); returns the checkpoint and losses."""
    n = scaled(args)['pretrain_iters']
    warmup = max(1, n // 10)
    out = osp.join(stage_dir(args.work_dir, arm, seed), 'pretrain')
    os.makedirs(out, exist_ok=True)
    options = {'train_dataloader.dataset.ann_file': image_list, 'train_dataloader.num_workers': str(args.workers),
               'train_dataloader.persistent_workers': str(args.workers > 0),
               'train_cfg.max_iters': str(n), 'param_scheduler.0.end': str(warmup),
               'param_scheduler.1.begin': str(warmup), 'param_scheduler.1.T_max': str(n - warmup),
               'param_scheduler.1.end': str(n), 'randomness.seed': str(seed),
               'default_hooks.checkpoint.interval': str(max(25, n // 4)),
               'default_hooks.logger.interval': str(max(5, n // 8)), **ARMS[arm].options}
    cmd = [sys.executable, 'tools/train.py', ARMS[arm].config, '--work-dir', osp.abspath(out)]
    if osp.exists(osp.join(out, 'last_checkpoint')):
        cmd.append('--resume')
    cmd += ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()]
    run_logged(cmd, osp.join(out, 'stage.log'), f'[{arm} s{seed} pretrain]', ('Iter(train)', 'Error'))
    checkpoint = osp.join(out, f'iter_{n}.pth')
    if not osp.exists(checkpoint):
        raise RuntimeError(f'pretraining finished without {checkpoint}')
    return dict(checkpoint=osp.abspath(checkpoint), iters=n, **last_losses(out))


def backbone_source(args: argparse.Namespace, arm: str, seed: int) -> Optional[str]:
    """The pretrained checkpoint of an arm (None for random init); an error if its pretraining has not finished."""
    if ARMS[arm].config is None:
        return None
    path = result_file(args.work_dir, arm, seed, 'pretrain')
    if not osp.exists(path):
        raise RuntimeError(f'{arm} seed {seed}: no finished pretraining ({path}); run its pretrain stage first')
    with open(path) as f:
        return json.load(f)['checkpoint']


def seg_args(args: argparse.Namespace) -> List[str]:
    """The segmentation-folder arguments shared by both probe modes."""
    out = ['--data-root', args.seg_root, '--img-dir', args.img_dir, '--ann-dir', args.ann_dir,
           '--img-suffix', args.img_suffix, '--seg-suffix', args.seg_suffix, '--ignore-index',
           str(args.ignore_index), '--scale', *map(str, args.scale)]
    return out + (['--classes', *args.classes] if args.classes else [])


def run_probe(args: argparse.Namespace, arm: str, seed: int, mode: str) -> dict:
    """Linear probe or short FCN fine-tune of one arm's backbone (tools/probe_segmentation.py)."""
    iters = scaled(args)[f'{mode}_iters']
    out = osp.join(stage_dir(args.work_dir, arm, seed), mode)
    os.makedirs(out, exist_ok=True)
    ckpt = backbone_source(args, arm, seed)
    source = ['--random-init'] if ckpt is None else ['--checkpoint', ckpt]
    result_json = osp.join(out, 'probe.json')
    cmd = [sys.executable, 'tools/probe_segmentation.py', *source, '--mode', mode, *seg_args(args),
           '--iters', str(iters), '--crop', str(args.probe_crop), '--seed', str(seed), '--workers',
           str(args.workers), '--log-interval', str(max(5, iters // 4)), '--work-dir', osp.abspath(out),
           '--out-json', osp.abspath(result_json)]
    run_logged(cmd, osp.join(out, 'stage.log'), f'[{arm} s{seed} {mode}]', ('[probe] iter', 'mIoU:'))
    with open(result_json) as f:
        result = json.load(f)
    return dict(mIoU=result['mIoU'], aAcc=result['aAcc'], per_class=result['per_class'], iters=iters)


def run_abo(args: argparse.Namespace, arm: str, seed: int) -> dict:
    """Class-merged ABO of K-means segments of the frozen backbone's features (in-process)."""
    from abo import semantic_abo  # torch and mmpretrain are imported only when a stage needs them
    ckpt = backbone_source(args, arm, seed)
    metrics = semantic_abo(ckpt, seed=seed, seg_root=args.seg_root, img_dir=args.img_dir, ann_dir=args.ann_dir,
                           img_suffix=args.img_suffix, seg_suffix=args.seg_suffix, size=tuple(args.scale),
                           ignore_index=args.ignore_index, ks=args.abo_ks,
                           max_images=scaled(args)['abo_images'])
    return metrics


def estimate(args: argparse.Namespace, stage: str, arm: str, done: Dict[Tuple[str, str], List[float]]) -> float:
    """Seconds a stage should take: the mean measured for the same arm and stage, else for the stage, else a prior."""
    same = done.get((arm, stage)) or [t for (a, s), ts in done.items() if s == stage for t in ts]
    if same:
        return sum(same) / len(same)
    budget = scaled(args)
    if stage == 'pretrain':
        return budget['pretrain_iters'] * PRIOR_SECONDS['pretrain_iter']
    if stage == 'abo':
        return budget['abo_images'] * PRIOR_SECONDS['abo_image']
    return budget[f'{stage}_iters'] * PRIOR_SECONDS[f'{stage}_iter'] + PRIOR_SECONDS['probe_fixed']


def fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


def status(args: argparse.Namespace) -> None:
    """Print every planned stage and whether it is done."""
    for arm, seed, stage in plan(args):
        path = result_file(args.work_dir, arm, seed, stage)
        state = 'pending'
        if osp.exists(path):
            with open(path) as f:
                state = f'done in {json.load(f)["seconds"]:.0f} s'
        print(f'{arm:14s} seed {seed}  {stage:9s} {state}')


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.list:
        status(args)
        return 0
    os.makedirs(args.work_dir, exist_ok=True)
    failed = [] if args.report_only else run_all(args)
    table = write_report(args.work_dir, ARMS, args.seeds)
    print(f'\n{table}\n\nresults: {osp.join(args.work_dir, "results.md")}, results.json, results.png')
    if failed:
        print('[quality] stages that failed (rerun the same command to retry them):\n  ' + '\n  '.join(failed))
        return 1
    return 0


def run_all(args: argparse.Namespace) -> List[str]:
    """Run every pending stage of the plan, printing progress and an ETA; returns what failed."""
    image_list = osp.join(args.work_dir, 'pretrain_images.txt')
    if 'pretrain' in args.stages and args.pretrain_images:
        images = collect_images(args.pretrain_images)
        with open(image_list, 'w') as f:
            f.write('\n'.join(images) + '\n')
        print(f'[quality] {len(images)} pretraining images listed in {image_list}')
    budget = scaled(args)
    print(f'[quality] budget {args.budget}: {budget["pretrain_iters"]} pretraining iterations, '
          f'{budget["linear_iters"]} linear-probe and {budget["finetune_iters"]} fine-tune iterations, ABO on up to '
          f'{budget["abo_images"]} val images')
    runners = dict(pretrain=lambda a, s: run_pretrain(args, a, s, osp.abspath(image_list)),
                   linear=lambda a, s: run_probe(args, a, s, 'linear'),
                   finetune=lambda a, s: run_probe(args, a, s, 'finetune'),
                   abo=lambda a, s: run_abo(args, a, s))
    todo = [step for step in plan(args) if not osp.exists(result_file(args.work_dir, *step))]
    done: Dict[Tuple[str, str], List[float]] = {}
    failed: List[str] = []
    start = time.time()
    for i, (arm, seed, stage) in enumerate(todo):
        if any(f.startswith(f'{arm} seed {seed} pretrain') for f in failed):
            failed.append(f'{arm} seed {seed} {stage}: skipped, its pretraining failed')
            continue
        eta = sum(estimate(args, st, a, done) for a, _, st in todo[i:])
        print(f'[quality] {i + 1}/{len(todo)} {arm} seed {seed} {stage} | elapsed {fmt_time(time.time() - start)}'
              f' | ETA {fmt_time(eta)}', flush=True)
        os.makedirs(stage_dir(args.work_dir, arm, seed), exist_ok=True)
        t0 = time.time()
        try:
            result = runners[stage](arm, seed)
        except (RuntimeError, FileNotFoundError, ValueError) as e:
            failed.append(f'{arm} seed {seed} {stage}: {e}')
            print(f'[quality] FAILED {arm} seed {seed} {stage}: {e}', flush=True)
            continue
        seconds = time.time() - t0
        done.setdefault((arm, stage), []).append(seconds)
        write_json(result_file(args.work_dir, arm, seed, stage), dict(result, seconds=seconds))
        shown = {k: v for k, v in result.items() if isinstance(v, float) and not math.isnan(v)}
        print(f'[quality] done {arm} seed {seed} {stage} in {seconds:.0f} s '
              + ' '.join(f'{k}={v:.3g}' for k, v in shown.items()), flush=True)
    return failed


if __name__ == '__main__':
    sys.exit(main())
