"""Every shell command in README.md and docs/*.md is executed, so the docs cannot go stale.

What is read: the fenced blocks tagged ``bash``, ``sh``, ``shell`` or ``console`` (in a console block, the lines
starting with ``$ ``); continuation lines are joined. Each block runs as one bash script (``set -euo pipefail``), the
blocks of a page in order, in a sandbox that looks like the checkout (links to tools/, configs/, multisiam_mm/ ...)
but has its own empty data/ and work_dirs/ (only the inputs no command makes are put there: a small Waymo-style frame
list for configs/multisiam_waymo.py and a SODA10M-style folder).

How a command is made cheap without changing it: the sandbox's ``python``, ``.venv/bin/python`` and ``mim`` are
stand-ins that run the real ones with a few arguments appended (``SHORTENERS``: e.g. tools/train.py gets
``--cfg-options train_cfg.max_iters=2`` or, for an epoch loop, ``max_epochs=1`` on four images; a batch of 2, one
validation batch, no workers; tools/demo.py gets ``--max-iters 2``; torchrun at most 2 processes). argparse and
mmengine's ``--cfg-options`` take the last value, so the command runs as written, only shorter. A stand-in ``srun``
prints the command it was given and exits 0 (no Slurm here: the launch command that tools/slurm_train.sh or ``mim
train --launcher slurm`` builds is still built and checked).

Lines that cannot run here:

- a synopsis (a placeholder such as CONFIG, CKPT, PARTITION, ``[--flag ...]`` or ``a|b`` alternatives, or an
  input under /data/ or /path/): the tool's ``--help`` must succeed and name every ``--flag`` of the line (a shell
  script: its usage message);
- ``SPECIAL``: the reviewed list below, each with its reason.

A line whose program is neither known (``PROGRAMS``) nor special fails the test, naming the file and line: a new
runnable command needs no change here, a new kind of command needs a decision here.
"""
import functools
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Tuple

import pytest
from conftest import ROOT
from docs_shortening import shortened, train_options

DOCS = ['README.md'] + sorted(osp.join('docs', f) for f in os.listdir(osp.join(ROOT, 'docs')) if f.endswith('.md'))
SHELL_TAGS = ('bash', 'sh', 'shell', 'console')
BLOCK_TIMEOUT = 900

# Programs a documented line may start with (after VAR=value assignments); anything else must be in SPECIAL.
PROGRAMS = {'python', 'python3', '.venv/bin/python', 'mim', 'make', 'cd', 'ls', 'mkdir', 'cp', 'find', 'for', 'do',
            'done', 'echo', 'cat', 'head', 'tail', 'rm', 'mv', 'touch', 'export', 'source'}
SCRIPTS = re.compile(r'^(bash )?(\./)?tools/\w+\.sh$')

PLACEHOLDER = re.compile(r'^([A-Z][A-Z0-9_]{1,}(\.\w+|\.\.\.)?|<[^>]+>|/data/.*|/path/.*)$')
FLAG = re.compile(r'(?<![\w=-])(--[a-z][\w-]*)')  # an option, not the value of one (--srun-args=--export=ALL)


@dataclass
class DocLine:
    """One logical command of a page (continuations joined)."""
    path: str
    line: int
    text: str

    def where(self) -> str:
        return f'{self.path}:{self.line}'


def fenced_blocks(path: str) -> List[Tuple[str, int, str]]:
    """(language tag, '' for none; line number of the first body line; body) of each fenced block of a page."""
    text = open(osp.join(ROOT, path), encoding='utf-8').read()
    return [(m.group(1), text[:m.start(2)].count('\n') + 1, m.group(2))
            for m in re.finditer(r'^```(\w*)[^\n]*\n(.*?)^```', text, re.M | re.S)]


def extract_blocks(path: str) -> List[List[DocLine]]:
    """The shell blocks of a page, each as its list of logical command lines."""
    blocks = []
    for tag, first, body in fenced_blocks(path):
        if tag not in SHELL_TAGS:
            continue
        raw = body.splitlines()
        if tag == 'console':
            raw = [r[2:] if r.startswith('$ ') else '' for r in raw]
        lines, i = [], 0
        while i < len(raw):
            start, cmd = i, raw[i]
            while cmd.rstrip().endswith('\\') and i + 1 < len(raw):
                i += 1
                cmd = cmd.rstrip()[:-1].rstrip() + ' ' + raw[i].strip()
            i += 1
            if strip_comment(cmd).strip():
                lines.append(DocLine(path, first + start, cmd.strip()))
        blocks.append(lines)
    return blocks


COMMAND_START = re.compile(r'^\s*([A-Za-z_]\w*=\S*\s+)*((\.venv/bin/)?(python3?|mim|make|bash)\s|tools/\w+\.sh\b)')


def untagged_command_blocks(path: str) -> List[Tuple[str, str]]:
    """(page, first line) of each fenced block without a language tag whose lines include a command: such a block is
    not run, so it must be tagged ``bash`` or be on the reviewed list UNTAGGED_NOT_RUN."""
    found = []
    for tag, _, body in fenced_blocks(path):
        commands = [line for line in body.splitlines() if COMMAND_START.match(line)]
        if not tag and commands:
            found.append((path, commands[0].strip()))
    return found


# Untagged blocks of commands that this test does not run (each would need a shortener or a rule). Empty: every
# block of commands is tagged and runs. Tagging one `bash` makes it run; a new untagged block of commands fails
# test_untagged_command_blocks_are_reviewed until it is tagged or listed here with its reason.
UNTAGGED_NOT_RUN: set = set()

# Pages whose commands use what another page's commands make (docs/probes.md probes `make demo`'s work_dirs/demo on
# data/synthetic_streets): that page runs first in the sandbox when it has not yet, as a reader would have run it.
PAGE_NEEDS = {'docs/probes.md': 'README.md'}


def strip_comment(line: str) -> str:
    """The line without a trailing shell comment (a '#' outside quotes at the start or after a blank)."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in '\'"':
            quote = c
        elif c == '#' and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line


def words(line: str) -> List[str]:
    return shlex.split(strip_comment(line), posix=True)


def program(tokens: List[str]) -> str:
    """The program of a command: the first word after VAR=value assignments ('' for an assignment alone)."""
    return next((t for t in tokens if not re.match(r'^[A-Za-z_]\w*=', t)), '')


def is_synopsis(tokens: List[str]) -> bool:
    """A usage line rather than a command: placeholders, [optional parts] or a|b alternatives."""
    body = [t for t in tokens if not re.match(r'^[A-Za-z_]\w*=', t)]
    return any(PLACEHOLDER.match(t) or t.startswith('[') or t.endswith(']') or re.search(r'\w\|\w', t)
               for t in body)


# ---- the sandbox ----

def shim_source(real: str, kind: str) -> str:
    """A stand-in for the real ``python`` or ``mim`` that appends the shortening arguments and execs the real one."""
    return f'''#!{sys.executable}
import os, sys
sys.path.insert(0, {osp.join(ROOT, 'tests')!r})
from docs_shortening import shortened
os.execv({real!r}, [{real!r}, *shortened({kind!r}, sys.argv[1:])])
'''


def make_sandbox(root: str) -> Dict[str, str]:
    """Fill ``root`` like a checkout (links), with stand-ins and the inputs no documented command creates; returns
    the environment to run the blocks in."""
    for name in os.listdir(ROOT):
        if name not in ('.venv', '.git', 'data', 'work_dirs') and not name.startswith(('.pytest', '.ruff')):
            os.symlink(osp.join(ROOT, name), osp.join(root, name))
    bin_dir = osp.join(root, '.venv', 'bin')
    os.makedirs(bin_dir)
    real_bin = osp.dirname(sys.executable)
    for name, kind in (('python', 'python'), ('python3', 'python'), ('mim', 'mim')):
        path = osp.join(bin_dir, name)
        with open(path, 'w') as f:
            f.write(shim_source(osp.join(real_bin, 'python' if kind == 'python' else 'mim'), kind))
        os.chmod(path, 0o755)
    for name in os.listdir(real_bin):  # everything else of the venv as it is (ruff, torchrun, tensorboard ...)
        if not osp.exists(osp.join(bin_dir, name)):
            os.symlink(osp.join(real_bin, name), osp.join(bin_dir, name))
    open(osp.join(root, '.venv', '.multisiam_setup_done'), 'w').close()  # the Makefile's setup is done
    fake = osp.join(root, '.fakebin')
    os.makedirs(fake)
    with open(osp.join(fake, 'srun'), 'w') as f:
        f.write('#!/bin/sh\necho "[stand-in srun] srun $*"\n')
    os.chmod(osp.join(fake, 'srun'), 0o755)

    from mmengine.config import Config

    from multisiam_mm.datasets import write_synthetic_dataset
    frames = osp.join(root, 'data', 'frames')
    write_synthetic_dataset(frames, num_train=8, num_val=2, width=160, height=96, seed=1)
    images = sorted(osp.join(frames, 'images', 'train', f) for f in os.listdir(osp.join(frames, 'images', 'train')))
    waymo = Config.fromfile(osp.join(ROOT, 'configs', 'multisiam_waymo.py')).train_dataloader.dataset
    os.makedirs(osp.join(root, waymo.data_root), exist_ok=True)
    with open(osp.join(root, waymo.data_root, waymo.ann_file), 'w') as f:
        f.write(''.join(f'{p}\n' for p in images))
    soda = osp.join(root, 'data', 'soda10m', 'SSLAD-2D', 'unlabeled', 'train')
    os.makedirs(soda)
    for p in images[:2]:
        os.symlink(p, osp.join(soda, osp.basename(p)))
    write_idd_lite_like(osp.join(osp.dirname(root), 'shared', 'data', 'idd20k_lite'))
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env.update(PATH=os.pathsep.join([bin_dir, fake, env.get('PATH', '')]), VIRTUAL_ENV=osp.join(root, '.venv'),
               MPLBACKEND='Agg')
    return env


def write_idd_lite_like(root: str, size: Tuple[int, int] = (160, 114)) -> None:
    """A few frames laid out like ../shared/data/idd20k_lite (the quality benchmark's documented data, outside the
    checkout): ``leftImg8bit/{train,test,val}/<seq>/<frame>_image.jpg`` and, for train and val,
    ``gtFine/<split>/<seq>/<frame>_label.png`` with class indices 0..6 and 255 (ignore)."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(0)
    w, h = size
    for split, count in (('train', 8), ('test', 8), ('val', 2)):
        for i in range(count):
            label = np.full((h, w), 255, np.uint8)
            for c in range(7):  # one band per class, a ragged edge of unlabelled pixels
                label[c * h // 7:(c + 1) * h // 7, int(rng.integers(0, 8)):] = c
            image = (rng.integers(0, 40, (h, w, 3)) + np.where(label == 255, 0, label * 30)[..., None]).astype(np.uint8)
            stem = osp.join(split, f'{i % 2}', f'{i:03d}')
            os.makedirs(osp.join(root, 'leftImg8bit', osp.dirname(stem)), exist_ok=True)
            cv2.imwrite(osp.join(root, 'leftImg8bit', stem + '_image.jpg'), image)
            if split != 'test':
                os.makedirs(osp.join(root, 'gtFine', osp.dirname(stem)), exist_ok=True)
                cv2.imwrite(osp.join(root, 'gtFine', stem + '_label.png'), label)


# ---- checks for what cannot run here ----

@functools.cache
def _help_output(cmd: Tuple[str, ...], cwd: str, env: Tuple[Tuple[str, str], ...]) -> subprocess.CompletedProcess:
    return subprocess.run([*cmd, '--help'], cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=300)


def help_output(cmd: Tuple[str, ...], cwd: str, env: Dict[str, str]) -> subprocess.CompletedProcess:
    """``cmd --help``, run once per command (several synopsis lines name the same tool)."""
    return _help_output(cmd, cwd, tuple(sorted(env.items())))


def check_help(doc: DocLine, cwd: str, env: Dict[str, str]) -> None:
    """A synopsis: the tool's --help (a script: its usage message) works and names every --flag of the line."""
    tokens = words(doc.text)
    prog = program(tokens)
    if SCRIPTS.match(prog):
        script = prog
        res = subprocess.run(['bash', script], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
        assert res.returncode == 2 and 'usage:' in res.stderr, f'{doc.where()}: {script} gave no usage message'
        assert subprocess.run(['bash', '-n', script], cwd=cwd).returncode == 0
        return
    i = tokens.index(prog)
    cmd = tokens[i:i + 2]  # python tools/X.py, mim train
    res = help_output(tuple(cmd), cwd, env)
    assert res.returncode == 0, f'{doc.where()}: {" ".join(cmd)} --help failed:\n{res.stderr[-2000:]}'
    missing = [f for f in FLAG.findall(strip_comment(doc.text)) if f not in res.stdout and f != '--help']
    assert not missing, f'{doc.where()}: {" ".join(cmd)} --help does not list {missing}'


def check_make_test(doc: DocLine, cwd: str, env: Dict[str, str]) -> None:
    res = subprocess.run(['make', '-n', 'test'], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and 'ruff check' in res.stdout and 'hadolint' in res.stdout and '-m pytest tests' \
        in res.stdout, res.stdout


def check_mim_gpus(doc: DocLine, cwd: str, env: Dict[str, str]) -> None:
    res = subprocess.run(['mim', 'train', '--help'], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and all(f in res.stdout for f in FLAG.findall(doc.text)), res.stdout[-2000:]


def check_gpu_check(doc: DocLine, cwd: str, env: Dict[str, str]) -> None:
    """The GPU check: its usage message and bash -n; without CUDA, its refusal (exit 2) pointing to --cpu."""
    script = 'benchmarks/gpu_check.sh'
    usage = subprocess.run(['bash', script, '--help'], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert usage.returncode == 0 and '--cpu' in usage.stdout, usage.stdout
    assert subprocess.run(['bash', '-n', script], cwd=cwd).returncode == 0
    import torch
    if not torch.cuda.is_available():
        res = subprocess.run(['bash', script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 2 and 'pass --cpu' in res.stderr, (res.returncode, res.stderr[-2000:])


def check_pytest_files(doc: DocLine, cwd: str, env: Dict[str, str]) -> None:
    """A line that runs test files of this suite: make test runs them in full, so here they must exist and collect."""
    files = [t for t in words(doc.text) if t.startswith('tests/') and t.endswith('.py')]
    assert files and all(osp.isfile(osp.join(ROOT, f)) for f in files), f'{doc.where()}: no such test file in {files}'
    res = subprocess.run([sys.executable, '-m', 'pytest', '--collect-only', '-q', *files], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and ' collected' in res.stdout, f'{doc.where()}: {res.stdout[-2000:]}'


def add_dry_run(text: str) -> str:
    return strip_comment(text) + ' --dry-run'


def drop_amp(text: str) -> str:
    return re.sub(r'\s--amp\b', '', strip_comment(text))


# (pattern on the line, what to do instead: a check run from here or a rewritten line, why). Reviewed list.
SPECIAL: List[Tuple[str, object, str]] = [
    (r'^make test\b', check_make_test,
     'is CI itself (ruff, hadolint and the whole suite, this test included): `make -n test` must list those steps'),
    (r'^mim train .*--launcher pytorch', check_mim_gpus,
     'needs as many GPUs as --gpus (mim runs torch.distributed.launch with its own interpreter, which no stand-in '
     'can shorten): `mim train --help` must list the flags'),
    (r'^(NNODES=\S+ )*tools/dist_train\.sh configs/benchmarks/', check_help,
     'fine-tunes on Cityscapes with 8 GPUs: the script must give its usage message and parse (bash -n)'),
    (r'^python tools/finetune\.py .*(--launcher (pytorch|slurm)|--use-mim)', add_dry_run,
     'launches on GPUs / Slurm with Cityscapes or BDD100K: run with --dry-run (extracts the backbone, writes the '
     'config, prints the launch command)'),
    (r'--cfg-options visualizer\.vis_backends\.1\.type=(Wandb|MLflow)VisBackend', None,
     'needs the wandb / mlflow package (and an account); what the line selects is checked by '
     'tests/test_log_hygiene.py::test_documented_visualisation_backend_switch'),
    (r'\s--amp\b', drop_amp, 'AMP needs a GPU (mmengine AmpOptimWrapper): run without --amp'),
    (r'^(\.venv/bin/)?python -m pytest tests/\S+\.py\s*(#.*)?$', check_pytest_files,
     'runs test files of this suite, which make test runs in full: they must exist and collect'),
    (r'^bash benchmarks/gpu_check\.sh --cpu --tiny\s*(#.*)?$', None,
     'run as written (and its table checked) by tests/test_gpu_check.py::test_gpu_check_cpu_tiny_prints_the_table'),
    (r'^bash benchmarks/gpu_check\.sh\s*(#.*)?$', check_gpu_check,
     'needs a CUDA GPU: its usage message must work, the script parse, and without CUDA it must refuse (exit 2) '
     'and point to --cpu'),
]


def plan(doc: DocLine) -> Tuple[str, object, str]:
    """('run', line, '') | ('check', fn, reason) | ('skip', None, reason) for one documented line."""
    for pattern, action, reason in SPECIAL:
        if re.search(pattern, doc.text):
            if action is None:
                return 'skip', None, reason
            if action in (check_help, check_make_test, check_mim_gpus, check_gpu_check, check_pytest_files):
                return 'check', action, reason
            if is_synopsis(words(doc.text)):
                return 'check', check_help, f'synopsis; {reason}'
            return 'run', action(doc.text), reason
    tokens = words(doc.text)
    prog = program(tokens)
    if not prog:
        return 'run', doc.text, ''  # VAR=value
    if prog not in PROGRAMS and not SCRIPTS.match(prog):
        pytest.fail(f'{doc.where()}: no rule for `{prog}` in `{doc.text}`: add it to PROGRAMS (if it runs here) or '
                    'SPECIAL (with the reason) in tests/test_documented_commands.py')
    if is_synopsis(tokens):
        return 'check', check_help, 'synopsis'
    return 'run', doc.text, ''


@pytest.fixture(scope='module')
def sandbox(tmp_path_factory) -> Tuple[str, Dict[str, str], set]:
    """(root, environment, pages already run). The root is ``<tmp>/main`` beside ``<tmp>/shared``, as the checkout
    sits beside ../shared."""
    root = osp.join(str(tmp_path_factory.mktemp('docs_sandbox')), 'main')
    os.makedirs(root)
    return root, make_sandbox(root), set()


def test_every_page_with_commands_is_found():
    pages = [p for p in DOCS if extract_blocks(p)]
    assert 'README.md' in pages and len(pages) >= 5, pages


def test_untagged_command_blocks_are_reviewed():
    found = {b for page in DOCS for b in untagged_command_blocks(page)}
    assert found - UNTAGGED_NOT_RUN == set(), 'untagged blocks of commands (tag them bash so that they run)'
    assert UNTAGGED_NOT_RUN - found == set(), 'listed in UNTAGGED_NOT_RUN but no longer untagged: remove them'


def test_extraction_and_planning():
    blocks = extract_blocks('README.md')
    lines = [d.text for b in blocks for d in b]
    assert 'make demo   # builds .venv with the pinned stack, generates synthetic street scenes, pretrains MultiSiam ' \
           'on CPU' in lines
    joined = [t for t in lines if t.startswith('python tools/extract_backbone.py CKPT')]
    assert joined and joined[0].endswith('[--format mmpretrain|torchvision|detectron2]')  # continuation joined
    assert plan(DocLine('x', 1, 'python tools/train.py CONFIG [--amp]'))[1] is check_help
    assert plan(DocLine('x', 1, 'python tools/demo.py --max-iters 20'))[0] == 'run'
    with pytest.raises(pytest.fail.Exception, match='no rule for `docker`'):
        plan(DocLine('x', 1, 'docker build .'))
    assert shortened('python', ['tools/demo.py', '--max-iters', '20'])[-2:] == ['--max-iters', '2']
    assert plan(DocLine('x', 1, 'python tools/finetune.py CKPT fcn --use-mim --launcher pytorch'))[1] is check_help
    assert plan(DocLine('x', 1, 'bash benchmarks/gpu_check.sh   # comment'))[1] is check_gpu_check
    assert shortened('python', ['-c', 'print(1)']) == ['-c', 'print(1)']
    torchrun = ['-m', 'torch.distributed.run', '--nnodes=1']
    assert shortened('python', [*torchrun, '--nproc_per_node=8', 'x.py'])[3] == '--nproc_per_node=2'
    assert shortened('python', [*torchrun, '--nproc-per-node', '8', 'x.py'])[3:5] == ['--nproc-per-node', '2']
    assert shortened('python', [*torchrun, '--nproc_per_node=gpu', 'x.py'])[3] == '--nproc_per_node=gpu'
    epoch = train_options(osp.join(ROOT, 'configs', 'densesiam', 'densesiam-useg_r18_fpn_synthetic-streets.py'))
    assert 'val_dataloader.dataset.indices=8' in epoch and 'val_dataloader.num_workers=0' in epoch


def run_page(page: str, root: str, env: Dict[str, str]) -> List[str]:
    """Run (or check) every command of a page in the sandbox, block by block; returns the report lines."""
    report = []
    for block in extract_blocks(page):
        script = ['set -euo pipefail']
        for doc in block:
            kind, what, reason = plan(doc)
            if kind == 'check':
                what(doc, root, env)
                report.append(f'{doc.where()}: checked ({reason})')
            elif kind == 'skip':
                report.append(f'{doc.where()}: not run ({reason})')
            else:
                script.append(what)
                if reason:
                    report.append(f'{doc.where()}: run as `{what}` ({reason})')
        if len(script) == 1:
            continue
        start = time.perf_counter()
        res = subprocess.run(['bash', '-c', '\n'.join(script)], cwd=root, env=env, capture_output=True, text=True,
                             timeout=BLOCK_TIMEOUT)
        report.append(f'{block[0].where()}: block of {len(block)} lines ran in {time.perf_counter() - start:.0f} s')
        assert res.returncode == 0, (f'{block[0].where()}: the block exited {res.returncode}\n--- script\n'
                                     + '\n'.join(script) + f'\n--- stdout\n{res.stdout[-3000:]}\n--- stderr\n'
                                     f'{res.stderr[-5000:]}')
    return report


@pytest.mark.slow
@pytest.mark.parametrize('page', [p for p in DOCS if extract_blocks(p)])
def test_documented_commands_run(page, sandbox):
    root, env, done = sandbox
    report = []
    needed = PAGE_NEEDS.get(page)
    if needed and needed not in done:
        report += [f'(first {needed}, whose outputs {page} uses)', *run_page(needed, root, env)]
        done.add(needed)
    report += run_page(page, root, env)
    done.add(page)
    print('\n'.join(report))
