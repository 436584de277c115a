"""The tools' answers to a user's mistakes: one line naming the problem and the fix, exit status 2, no traceback.

Each case runs the tool as a user would (a subprocess from a scratch working directory) and checks the exit status
and the exact error line; the cases that used to print a number from a partly loaded model check that none is
printed. The pure helpers (depth from keys, close config names, one-line messages) are tested in-process.
"""
import ast
import importlib.util
import os
import os.path as osp
import subprocess
import sys
from typing import Tuple

import pytest
import torch
from conftest import ROOT
from mmpretrain.registry import MODELS

from multisiam_mm.utils.backbone_export import BackboneKeyError, load_backbone_strict, resnet_depth
from multisiam_mm.utils.cli_errors import UserError, close_configs, list_configs, one_line, resolve_config, run_cli

CONFIGS = osp.join(ROOT, 'configs')


def run_tool(args, cwd, timeout=300):
    """(exit status, stdout, stderr) of ``python <args>`` in ``cwd``, the checkout on PYTHONPATH."""
    env = dict(os.environ, PYTHONPATH=ROOT, MULTISIAM_TRACEBACK='')
    res = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=str(cwd), env=env,
                         timeout=timeout)
    return res.returncode, res.stdout, res.stderr


def error_line(stderr: str) -> str:
    """The one ``error:`` line of a tool's stderr (asserting there is exactly one and no traceback)."""
    assert 'Traceback' not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith('error: ')]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def tiny_resnet_file(path, depth: int, wrap: bool = True) -> str:
    """A backbone-only checkpoint of a narrow ResNet-``depth`` (8 base channels: small file, real key layout)."""
    sd = MODELS.build(dict(type='ResNet', depth=depth, stem_channels=8, base_channels=8)).state_dict()
    torch.save({'state_dict': sd} if wrap else sd, str(path))
    return str(path)


def tool(name: str) -> str:
    return osp.join(ROOT, 'tools', name)


# ---- pure helpers ----

@pytest.mark.parametrize('depth', [18, 34, 50, 101, 152])
def test_resnet_depth_from_the_keys(depth):
    assert resnet_depth(MODELS.build(dict(type='ResNet', depth=depth, base_channels=8)).state_dict()) == depth


def test_resnet_depth_of_other_keys_is_none():
    assert resnet_depth({'encoder.conv.weight': torch.zeros(1)}) is None
    assert resnet_depth({'layer1.0.conv1.weight': torch.zeros(1)}) is None  # one block: no ResNet of ours


def test_depth_mismatch_is_one_line_naming_the_flag():
    sd = MODELS.build(dict(type='ResNet', depth=18, base_channels=8)).state_dict()
    with pytest.raises(BackboneKeyError) as err:
        load_backbone_strict(MODELS.build(dict(type='ResNet', depth=50, base_channels=8)), sd)
    assert str(err.value) == ('the checkpoint holds a ResNet-18 backbone but the model is a ResNet-50; use --depth 18 '
                              '(in a config: model.backbone.depth=18)')


def test_close_config_names():
    configs = list_configs(CONFIGS, ROOT)
    assert 'configs/multisiam_waymo.py' in configs and not any('_base_' in c for c in configs)
    assert close_configs('configs/multisiam_wamyo.py', configs)[0] == 'configs/multisiam_waymo.py'
    assert close_configs('multisiam_synthetic_dmeo', configs) == ['configs/demo/multisiam_synthetic_demo.py']
    assert resolve_config('multisiam_synthetic_demo', CONFIGS).endswith('configs/demo/multisiam_synthetic_demo.py')
    with pytest.raises(UserError, match=r"^config 'zzzz' not found; no config has a similar name; the \d+ configs "
                                        r'are under configs/$'):
        resolve_config('zzzz', CONFIGS)


def test_one_line():
    assert one_line('a\n  b   c\n\n d') == 'a; b c; d'
    assert one_line('x' * 700, limit=10) == 'xxxxxxx...'


# ---- the tools ----
# Three cases run as a user runs them (a subprocess from a scratch directory: the script's __main__, the exit status,
# stderr); the others call the tool's main through run_cli in this process, which is exactly what each tool's
# __main__ does (test_every_tool_main_runs_through_run_cli), at a fraction of the cost of a fresh interpreter.

def run_in_process(name: str, argv: list, cwd, capsys, monkeypatch) -> Tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``run_cli(tools/<name>.main, argv)`` with ``cwd`` as working directory."""
    monkeypatch.chdir(cwd)
    spec = importlib.util.spec_from_file_location(f'cli_tool_{name}', tool(f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        run_cli(module.main, argv)
    out, err = capsys.readouterr()
    return exited.value.code, out, err


# The tools that read a config, a list file or a checkpoint (tools/extract_waymo_frames.py and
# tools/gen_synthetic_streets.py read neither and report their own argument errors).
TOOLS_WITH_MAIN = ['demo.py', 'eval_object_discovery.py', 'extract_backbone.py', 'finetune.py', 'probe_segmentation.py',
                   'train.py', 'visualize_clusters.py']


@pytest.mark.parametrize('name', TOOLS_WITH_MAIN)
def test_every_tool_main_runs_through_run_cli(name):
    tree = ast.parse(open(tool(name)).read())
    guards = [node for node in tree.body if isinstance(node, ast.If) and "__name__ == '__main__'" in ast.unparse(
        node.test)]
    assert len(guards) == 1, name
    calls = [n for n in ast.walk(guards[0]) if isinstance(n, ast.Call)]
    assert any(ast.unparse(c.func) == 'run_cli' and ast.unparse(c.args[0]) == 'main' for c in calls), \
        f'tools/{name}: __main__ must call run_cli(main, ...) for one-line errors'


@pytest.mark.slow
def test_train_missing_list_file(tmp_path):
    rc, _, err = run_tool([tool('train.py'), osp.join(CONFIGS, 'multisiam_waymo.py'), '--work-dir', 'w'], tmp_path)
    assert rc == 2
    assert error_line(err) == (
        'error: list file data/waymo/five_cameras.txt (train_dataloader.dataset.ann_file) does not exist; create it '
        'with the frame extraction tool (tools/extract_waymo_frames.py, docs/data_ingestion.md), or train on your own '
        'images: tools/train.py CONFIG --images DIR_OR_LIST')
    assert not (tmp_path / 'w').exists()  # stopped before the Runner made its work dir


@pytest.mark.slow
def test_mim_train_missing_list_file_surfaces_the_line(tmp_path):
    """Under ``mim train`` the same line reaches the user (mim then adds its own CalledProcessError report)."""
    mim = osp.join(osp.dirname(sys.executable), 'mim')
    env = dict(os.environ, PYTHONPATH='')
    res = subprocess.run([mim, 'train', 'multisiam_mm', 'configs/multisiam_waymo.py', '--work-dir', 'w'],
                         capture_output=True, text=True, cwd=str(tmp_path), env=env, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert out.count('error: list file data/waymo/five_cameras.txt (train_dataloader.dataset.ann_file) does not '
                     'exist; create it with the frame extraction tool') == 1, out[-3000:]
    assert 'tools/train.py", line' not in out  # no traceback from our script; what follows is mim's own report
    assert 'returned non-zero exit status 2' in out


@pytest.mark.slow
def test_probe_wrong_depth(tiny_streets, tmp_path):
    ckpt = tiny_resnet_file(tmp_path / 'r18.pth', 18)
    rc, out, err = run_tool([tool('probe_segmentation.py'), '--checkpoint', ckpt, '--depth', '50',
                             '--data-root', tiny_streets, '--work-dir', 'w'], tmp_path)
    assert rc == 2
    assert error_line(err) == ('error: the checkpoint holds a ResNet-18 backbone but the model is a ResNet-50; use '
                               '--depth 18 (in a config: model.backbone.depth=18)')
    assert 'mIoU' not in out


def test_train_config_not_found(tmp_path, capsys, monkeypatch):
    rc, _, err = run_in_process('train', ['configs/multisiam_wamyo.py'], tmp_path, capsys, monkeypatch)
    assert rc == 2
    assert error_line(err) == "error: config 'configs/multisiam_wamyo.py' not found; did you mean " \
                              'configs/multisiam_waymo.py?'


def test_finetune_config_not_found(tmp_path, capsys, monkeypatch):
    rc, _, err = run_in_process('finetune', ['nope.pth', 'fcn_r50_pretrained_40k_cityscapes-512x1042'], tmp_path,
                                capsys, monkeypatch)
    assert rc == 2
    assert error_line(err).startswith("error: config 'fcn_r50_pretrained_40k_cityscapes-512x1042' not found; did you "
                                      'mean configs/benchmarks/mmseg/fcn_r50_pretrained_40k_cityscapes-512x1024.py')


def test_probe_missing_checkpoint(tiny_streets, tmp_path, capsys, monkeypatch):
    rc, _, err = run_in_process('probe_segmentation', ['--checkpoint', 'nope.pth', '--data-root', tiny_streets],
                                tmp_path, capsys, monkeypatch)
    assert rc == 2
    assert error_line(err) == ('error: checkpoint not found: nope.pth; give a checkpoint file (.pth) or the work dir '
                               'of a training run (its last_checkpoint is used)')


def test_probe_missing_data_root(tmp_path, capsys, monkeypatch):
    rc, _, err = run_in_process('probe_segmentation', ['--random-init', '--data-root', 'nowhere'], tmp_path, capsys,
                                monkeypatch)
    assert rc == 2
    assert error_line(err).startswith('error: segmentation folder nowhere/images/train does not exist; the probe reads')


def test_probe_junk_checkpoint(tiny_streets, tmp_path, capsys, monkeypatch):
    (tmp_path / 'junk.pth').write_bytes(b'\x89PNG not a checkpoint' * 20)
    rc, _, err = run_in_process('probe_segmentation', ['--checkpoint', 'junk.pth', '--data-root', tiny_streets],
                                tmp_path, capsys, monkeypatch)
    assert rc == 2
    assert error_line(err) == ('error: junk.pth is not a PyTorch checkpoint (Unsupported operand 80); give a .pth '
                               'written by tools/train.py or tools/extract_backbone.py')
    assert 'weights_only=False' not in err  # torch's advice to turn the safety off is not passed on


def test_truncated_checkpoint(tiny_streets, tmp_path, capsys, monkeypatch):
    ckpt = tiny_resnet_file(tmp_path / 'r18.pth', 18)
    (tmp_path / 'cut.pth').write_bytes(open(ckpt, 'rb').read()[:4000])
    rc, _, err = run_in_process('probe_segmentation', ['--checkpoint', 'cut.pth', '--data-root', tiny_streets],
                                tmp_path, capsys, monkeypatch)
    assert rc == 2
    assert error_line(err).startswith('error: cut.pth is not a readable PyTorch checkpoint (PytorchStreamReader failed '
                                      'reading zip archive')


def test_probe_checkpoint_with_foreign_objects(tiny_streets, tmp_path, capsys, monkeypatch):
    import argparse
    torch.save({'state_dict': {}, 'args': argparse.Namespace(a=1)}, str(tmp_path / 'old.pth'))
    rc, _, err = run_in_process('probe_segmentation', ['--checkpoint', 'old.pth', '--data-root', tiny_streets],
                                tmp_path, capsys, monkeypatch)
    assert rc == 2
    assert error_line(err) == ('error: old.pth holds objects that are not tensors (argparse.Namespace), which '
                               'weights-only loading refuses; if you trust the file, re-save its tensors: '
                               'torch.save(torch.load(PATH, weights_only=False)["state_dict"], NEW_PATH)')


def test_eval_object_discovery_wrong_depth_prints_no_number(tiny_streets, tmp_path, capsys, monkeypatch):
    """Before: loaded with strict=False and printed a table row (1.4 | 3.7 | 0.0) from a random ResNet-50."""
    ckpt = tiny_resnet_file(tmp_path / 'r18.pth', 18, wrap=False)
    rc, out, err = run_in_process('eval_object_discovery', ['--checkpoint', ckpt, '--data-root', tiny_streets,
                                                            '--size', '64', '--ks', '2', '--max-images', '1'],
                                  tmp_path, capsys, monkeypatch)
    assert rc == 2
    assert error_line(err) == ('error: the checkpoint holds a ResNet-18 backbone but the model is a ResNet-50; use '
                               '--depth 18 (in a config: model.backbone.depth=18)')
    assert '| model |' not in out and 'ABO' not in out


def test_eval_object_discovery_config_checkpoint_mismatch(tiny_streets, tmp_path, capsys, monkeypatch):
    """With --config the whole model is loaded strictly too: a backbone-only file does not fit an Odin model."""
    ckpt = tiny_resnet_file(tmp_path / 'r18.pth', 18)
    rc, out, err = run_in_process('eval_object_discovery', [
        '--config', osp.join(CONFIGS, 'odin', 'odin_r50_8xb128-coslr-300e_waymo.py'), '--checkpoint', ckpt,
        '--data-root', tiny_streets, '--size', '64', '--ks', '2', '--max-images', '1'], tmp_path, capsys, monkeypatch)
    assert rc == 2
    assert error_line(err).startswith('error: the checkpoint does not fit the Odin: missing keys (')
    assert '| model |' not in out


def test_visualize_clusters_wrong_depth(tiny_streets, tmp_path, capsys, monkeypatch):
    ckpt = tiny_resnet_file(tmp_path / 'r50.pth', 50)
    rc, _, err = run_in_process('visualize_clusters', ['--checkpoints', ckpt, '--images',
                                                       osp.join(tiny_streets, 'images', 'val'), '--out', 'c.png'],
                                tmp_path, capsys, monkeypatch)
    assert rc == 2
    assert error_line(err) == ('error: the checkpoint holds a ResNet-50 backbone but the model is a ResNet-18; use '
                               '--depth 50 (in a config: model.backbone.depth=50)')
    assert not (tmp_path / 'c.png').exists()


def test_extract_backbone_errors(tmp_path, capsys, monkeypatch):
    rc, _, err = run_in_process('extract_backbone', ['missing_dir/', 'out.pth'], tmp_path, capsys, monkeypatch)
    assert rc == 2 and error_line(err).startswith('error: checkpoint not found: missing_dir/')
    torch.save({'state_dict': {'encoder.conv.weight': torch.zeros(1)}}, str(tmp_path / 'enc.pth'))
    rc, _, err = run_in_process('extract_backbone', ['enc.pth', 'out.pth'], tmp_path, capsys, monkeypatch)
    assert rc == 2
    assert error_line(err) == ('error: no online backbone keys (prefix backbone.) in the checkpoint; prefixes found: '
                               'encoder.conv.')
    tiny = tiny_resnet_file(tmp_path / 'pre.pth', 18)
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in torch.load(tiny)['state_dict'].items()}}, tiny)
    rc, _, err = run_in_process('extract_backbone', [tiny, 'd2.pth', '--format', 'detectron2'], tmp_path, capsys,
                                monkeypatch)
    assert rc == 2
    assert error_line(err) == ('error: detectron2 reads pickled weights only from a file name ending in .pkl; name '
                               'the output d2.pkl')


def test_train_missing_resume_checkpoint(tmp_path, capsys, monkeypatch):
    (tmp_path / 'data' / 'synthetic_streets').mkdir(parents=True)
    (tmp_path / 'data' / 'synthetic_streets' / 'train.txt').write_text('images/train/00000.jpg\n')
    rc, _, err = run_in_process('train', [osp.join(CONFIGS, 'demo', 'multisiam_synthetic_demo.py'), '--resume',
                                          'w/iter_9.pth'], tmp_path, capsys, monkeypatch)
    assert rc == 2
    assert error_line(err) == ('error: checkpoint to resume from not found: w/iter_9.pth; give a .pth of the work '
                               'dir, or --resume alone for its latest checkpoint')
