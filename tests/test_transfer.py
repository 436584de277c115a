"""Transfer: backbone extraction, key layouts, strict loading into mmseg / mmdet benchmark models, tools/finetune.py."""
import glob
import importlib.util
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from conftest import ROOT, apply_cfg_options, load_tool, tiny_runner_cfg
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmpretrain.registry import MODELS as PRETRAIN_MODELS

from multisiam_mm.engine import StrictBackboneLoadHook
from multisiam_mm.utils.backbone_export import (
    BackboneKeyError,
    CheckpointError,
    convert_keys,
    extract_backbone,
    from_detectron2_key,
    load_backbone_strict,
    save_backbone,
    select_backbone,
    to_detectron2_key,
)

SEG_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs/benchmarks/mmseg/fcn_r50_pretrained_*.py')))
DET_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs/benchmarks/mmdet/mask-rcnn_r50_fpn_pretrained_*.py')))
R18 = ['model.backbone.depth=18']  # the tiny pretraining model's backbone



def resnet18_state_dict() -> dict:
    return PRETRAIN_MODELS.build(dict(type='ResNet', depth=18)).state_dict()


def build_benchmark_model(path: str) -> torch.nn.Module:
    """The model of a benchmark config with a ResNet-18 backbone, built in the config's own scope."""
    cfg = apply_cfg_options(Config.fromfile(path), R18)
    registry = {'mmseg': 'mmseg.registry', 'mmdet': 'mmdet.registry'}[cfg.default_scope]
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return importlib.import_module(registry).MODELS.build(cfg.model)


def fake_runner(model: torch.nn.Module, **cfg) -> SimpleNamespace:
    """What StrictBackboneLoadHook reads of a Runner."""
    return SimpleNamespace(model=model, cfg=Config(cfg), logger=MMLogger.get_current_instance())


# ---- key layouts (pure functions) ----

def test_torchvision_keys_match_torchvision_resnet18():
    import torchvision

    ours = convert_keys(resnet18_state_dict(), 'torchvision')
    theirs = {k: v for k, v in torchvision.models.resnet18().state_dict().items() if not k.startswith('fc.')}
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_detectron2_keys_round_trip():
    sd = resnet18_state_dict()
    d2 = convert_keys(sd, 'detectron2')
    assert {'stem.conv1.weight', 'stem.conv1.norm.weight', 'res2.0.conv1.norm.running_mean',
            'res3.0.shortcut.weight', 'res3.0.shortcut.norm.bias', 'res5.1.conv2.norm.num_batches_tracked'} <= set(d2)
    assert not any(k.startswith(('layer', 'conv1', 'bn1')) or '.bn' in k or 'downsample' in k for k in d2)
    assert [from_detectron2_key(k) for k in d2] == list(sd)
    assert to_detectron2_key('layer4.1.bn2.weight') == 'res5.1.conv2.norm.weight'


def pretraining_checkpoint(path, depth: int) -> dict:
    """A file shaped like a pretraining checkpoint (``backbone.*`` keys) around a random ResNet-``depth``; returns
    the backbone's state_dict."""
    sd = PRETRAIN_MODELS.build(dict(type='ResNet', depth=depth)).state_dict()
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in sd.items()}, 'meta': {}}, str(path))
    return sd


@pytest.mark.parametrize('depth', [18, 50])
def test_torchvision_export_loads_into_torchvision_with_only_fc_missing(depth, tmp_path):
    import torchvision

    sd = pretraining_checkpoint(tmp_path / 'ckpt.pth', depth)
    out = str(tmp_path / 'tv.pth')
    save_backbone(extract_backbone(str(tmp_path / 'ckpt.pth'), fmt='torchvision'), out)
    loaded = torch.load(out, weights_only=True)
    model = getattr(torchvision.models, f'resnet{depth}')()
    result = model.load_state_dict(loaded, strict=False)
    assert sorted(result.missing_keys) == ['fc.bias', 'fc.weight'] and result.unexpected_keys == []
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
    if depth == 18:  # same computation, not only same names: torchvision's trunk == mmpretrain's ResNet
        ours = PRETRAIN_MODELS.build(dict(type='ResNet', depth=18))
        ours.load_state_dict(sd)
        ours.eval(), model.eval()
        x = torch.randn(1, 3, 64, 64)
        trunk = torch.nn.Sequential(*list(model.children())[:-2])
        with torch.no_grad():
            assert torch.allclose(ours(x)[-1], trunk(x), atol=1e-5)


def test_docs_torchvision_snippet_runs(tmp_path, monkeypatch, capsys):
    """The three-line torchvision snippet of docs/transfer.md, run as written on a ResNet-50 export."""
    import re

    blocks = re.findall(r'```python\n(.*?)```', open(osp.join(ROOT, 'docs', 'transfer.md')).read(), re.S)
    snippet = [b for b in blocks if 'torchvision.models' in b]
    assert len(snippet) == 1 and len(snippet[0].strip().splitlines()) == 3
    pretraining_checkpoint(tmp_path / 'ckpt.pth', 50)
    save_backbone(extract_backbone(str(tmp_path / 'ckpt.pth'), fmt='torchvision'), str(tmp_path / 'r50_tv.pth'))
    monkeypatch.chdir(tmp_path)
    exec(snippet[0], {})
    assert capsys.readouterr().out.strip() == "_IncompatibleKeys(missing_keys=['fc.weight', 'fc.bias'], " \
                                              'unexpected_keys=[])'


def moco_detectron2_name(key: str) -> str:
    """The name MoCo's detection/convert-pretrain-to-detectron2.py gives a torchvision ResNet key (its rule: 'stem.'
    before non-layer keys, layerN -> res(N+1), bnN -> convN.norm, downsample.0/1 -> shortcut/shortcut.norm)."""
    if 'layer' not in key:
        key = 'stem.' + key
    for t in (1, 2, 3, 4):
        key = key.replace(f'layer{t}', f'res{t + 1}')
    for t in (1, 2, 3):
        key = key.replace(f'bn{t}', f'conv{t}.norm')
    return key.replace('downsample.0', 'shortcut').replace('downsample.1', 'shortcut.norm')


def test_detectron2_export_is_moco_converters_pickle(tmp_path):
    import pickle

    import numpy as np

    sd = pretraining_checkpoint(tmp_path / 'ckpt.pth', 50)
    out = str(tmp_path / 'r50_d2.pkl')
    save_backbone(extract_backbone(str(tmp_path / 'ckpt.pth'), fmt='detectron2'), out)
    with open(out, 'rb') as f:
        content = pickle.load(f)
    assert set(content) == {'model', '__author__', 'matching_heuristics'} and content['matching_heuristics'] is True
    assert content['model'].keys() == {moco_detectron2_name(k) for k in sd}
    assert all(isinstance(v, np.ndarray) and np.array_equal(v, sd[k].numpy())
               for k, v in ((k, content['model'][moco_detectron2_name(k)]) for k in sd))
    # detectron2 ResNet-50 module names (stem, res2-res5 with BottleneckBlocks, conv*.norm, shortcut.norm)
    assert {'stem.conv1.weight', 'stem.conv1.norm.running_var', 'res2.0.conv3.norm.bias', 'res2.0.shortcut.weight',
            'res2.0.shortcut.norm.weight', 'res5.2.conv2.weight', 'res4.5.conv1.norm.weight'} <= content['model'].keys()
    with pytest.raises(CheckpointError, match=r'name the output .*r50_d2\.pkl'):
        save_backbone(extract_backbone(str(tmp_path / 'ckpt.pth'), fmt='detectron2'), str(tmp_path / 'r50_d2.pth'))


def test_torchvision_refuses_deep_stem():
    v1c = PRETRAIN_MODELS.build(dict(type='ResNetV1c', depth=18)).state_dict()
    with pytest.raises(BackboneKeyError, match='stem.0'):
        convert_keys(v1c, 'torchvision')


def test_select_backbone_lists_prefixes_when_missing():
    sd = {'backbone.conv1.weight': torch.zeros(1), 'neck.fc.weight': torch.zeros(1), 'head.w': torch.zeros(1)}
    assert list(select_backbone(sd, 'online')[1]) == ['conv1.weight']
    with pytest.raises(BackboneKeyError, match=r'prefixes found: backbone\.conv1\., head\., neck\.fc\.'):
        select_backbone(sd, 'target')
    odin = {'target_net.module.backbone.conv1.weight': torch.zeros(1)}
    assert select_backbone(odin, 'target') == ('target_net.module.backbone.', {'conv1.weight': odin[
        'target_net.module.backbone.conv1.weight']})


def test_strict_load_names_the_keys():
    module = PRETRAIN_MODELS.build(dict(type='ResNet', depth=18))
    sd = resnet18_state_dict()
    sd['extra.weight'] = sd.pop('layer1.0.conv1.weight')
    sd['conv1.weight'] = torch.zeros(1)
    with pytest.raises(BackboneKeyError) as err:
        load_backbone_strict(module, sd)
    msg = str(err.value)
    assert 'missing keys (1): layer1.0.conv1.weight' in msg
    assert 'unexpected keys (1): extra.weight' in msg
    assert 'conv1.weight: checkpoint (1,) vs model (64, 3, 7, 7)' in msg


def test_missing_checkpoint_and_work_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        extract_backbone(str(tmp_path / 'nope.pth'))
    with pytest.raises(FileNotFoundError, match='last_checkpoint'):
        extract_backbone(str(tmp_path))


def test_benchmark_configs_parse_with_strict_plain_resnet():
    assert len(SEG_CONFIGS) == 4 and len(DET_CONFIGS) == 2
    for path in SEG_CONFIGS + DET_CONFIGS:
        cfg = Config.fromfile(path)
        assert cfg.model.backbone.type == 'ResNet' and cfg.model.backbone.init_cfg is None, path
        assert cfg.model.backbone.norm_cfg.type == 'SyncBN', path
        assert cfg.model.get('pretrained') is None and cfg.get('load_from') is None, path
        assert [h.type for h in cfg.custom_hooks] == ['StrictBackboneLoadHook'] and cfg.backbone_checkpoint, path
        assert 'multisiam_mm' in cfg.custom_imports.imports
    paper = Config.fromfile(osp.join(ROOT, 'configs/benchmarks/mmseg/fcn_r50_pretrained_90k_cityscapes-769x769.py'))
    assert paper.model.backbone.strides == (1, 2, 2, 1) and paper.model.decode_head.dilation == 6
    assert paper.train_cfg.max_iters == 90000 and paper.model.auxiliary_head is None


# ---- with a real (tiny) pretraining checkpoint ----

@pytest.fixture(scope='module')
def pretrain_dir(tiny_streets, tmp_path_factory) -> str:
    """A MultiSiam (ResNet-18) work dir after one training iteration."""
    work_dir = str(tmp_path_factory.mktemp('pretrain'))
    Runner.from_cfg(Config(tiny_runner_cfg(tiny_streets, work_dir, max_iters=1, ckpt_interval=1))).train()
    return work_dir


@pytest.fixture(scope='module')
def extracted(pretrain_dir, tmp_path_factory) -> dict:
    """Extracted backbones: network -> file (mmpretrain layout)."""
    out = tmp_path_factory.mktemp('backbones')
    paths = {}
    for network in ('online', 'target'):
        paths[network] = str(out / f'{network}.pth')
        save_backbone(extract_backbone(pretrain_dir, network), paths[network])
    return paths


@pytest.mark.slow
def test_extracted_backbone_is_weights_only_and_matches_the_model(pretrain_dir, extracted):
    full = torch.load(osp.join(pretrain_dir, 'iter_1.pth'), map_location='cpu', weights_only=True)['state_dict']
    for network, prefix in (('online', 'backbone.'), ('target', 'target_net.module.0.')):
        saved = torch.load(extracted[network], weights_only=True)
        assert saved['meta']['network'] == network and saved['meta']['prefix'] == prefix
        assert set(saved['state_dict']) == set(resnet18_state_dict())
        assert all(torch.equal(v, full[prefix + k]) for k, v in saved['state_dict'].items())


@pytest.mark.slow
@pytest.mark.parametrize('config', SEG_CONFIGS + DET_CONFIGS, ids=osp.basename)
def test_strict_hook_loads_into_benchmark_models(config, extracted, tmp_path):
    model = build_benchmark_model(config)
    StrictBackboneLoadHook().before_train(fake_runner(model, backbone_checkpoint=extracted['target']))
    saved = torch.load(extracted['target'], weights_only=True)['state_dict']
    assert all(torch.equal(v, saved[k]) for k, v in model.backbone.state_dict().items())

    d2 = str(tmp_path / 'd2.pth')
    save_backbone(dict(state_dict=convert_keys(saved, 'detectron2'), meta={}), d2)
    with pytest.raises(BackboneKeyError, match=r'missing keys \(\d+\): .*conv1\.weight.*; unexpected keys \(\d+\): '
                                               r'res2.*; these are detectron2 names: extract the backbone in the '
                                               r'mmpretrain layout'):
        StrictBackboneLoadHook(checkpoint=d2).before_train(fake_runner(model))


def test_hook_needs_a_checkpoint_and_skips_after_resume():
    model = SimpleNamespace(backbone=None)
    with pytest.raises(ValueError, match='backbone_checkpoint'):
        StrictBackboneLoadHook().before_train(fake_runner(model))
    runner = fake_runner(model, backbone_checkpoint='/nonexistent.pth')
    runner._has_loaded = True
    StrictBackboneLoadHook().before_test(runner)  # a loaded full checkpoint wins: nothing read


@pytest.mark.slow
def test_extract_tool_summary_and_errors(pretrain_dir, tmp_path, capsys):
    tool = load_tool('extract_backbone')
    out = str(tmp_path / 'tv.pth')
    tool.main([pretrain_dir, out, '--network', 'target', '--format', 'torchvision'])
    printed = capsys.readouterr().out
    assert 'network:    target' in printed and 'format:     torchvision' in printed and out in printed
    assert f'tensors:    {len(resnet18_state_dict())}\n' in printed
    assert 'load:       torchvision.models.resnet50().load_state_dict(torch.load(OUT), strict=False)' in printed
    assert set(torch.load(out, weights_only=True)) == set(resnet18_state_dict())  # the plain state_dict
    bad = str(tmp_path / 'bad.pth')
    torch.save({'state_dict': {'encoder.conv.weight': torch.zeros(1)}}, bad)
    with pytest.raises(BackboneKeyError, match=r'no online backbone keys .* prefixes found: encoder\.conv\.'):
        tool.main([bad, out])  # run as a script: one line, exit 2 (tests/test_cli_errors.py)


@pytest.mark.slow
def test_finetune_end_to_end_on_synthetic_streets(pretrain_dir, tiny_streets, tmp_path, capsys):
    tool = load_tool('finetune')
    work_dir = str(tmp_path / 'ft')
    loader = ['batch_size=2', 'num_workers=0', 'persistent_workers=False', f'dataset.data_root={tiny_streets}']
    options = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'log_level=WARNING']
    options += [f'{split}_dataloader.{o}' for split in ('train', 'val', 'test') for o in loader]
    tool.main([pretrain_dir, 'fcn_r18_synthetic_streets', '--work-dir', work_dir, '--cfg-options', *options])
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
    trained = torch.load(osp.join(work_dir, 'iter_2.pth'), weights_only=True)['state_dict']
    assert 'backbone.conv1.weight' in trained and 'decode_head.conv_seg.weight' in trained

    capsys.readouterr()
    tool.main([pretrain_dir, 'mask-rcnn_r50_fpn_pretrained_24k_cityscapes', '--work-dir', work_dir, '--launcher',
               'pytorch', '--gpus', '4', '--dry-run'])
    cmd = capsys.readouterr().out.strip().splitlines()[-1]
    assert cmd.endswith(f'tools/dist_train.sh {work_dir}/mask-rcnn_r50_fpn_pretrained_24k_cityscapes.py 4 '
                        f'--work-dir {work_dir}')
    dumped = Config.fromfile(osp.join(work_dir, 'mask-rcnn_r50_fpn_pretrained_24k_cityscapes.py'))
    assert dumped.backbone_checkpoint == osp.join(work_dir, 'backbone_online.pth')
    tool.main([pretrain_dir, 'fcn_r50_pretrained_40k_cityscapes-512x1024', '--work-dir', work_dir, '--use-mim',
               '--launcher', 'slurm', '--partition', 'p', '--gpus', '8', '--dry-run'])
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f'mim train mmseg {work_dir}/fcn_r50_pretrained_40k_cityscapes-512x1024.py --work-dir {work_dir} '
        '--launcher slurm --gpus 8 --partition p --gpus-per-node 8 --srun-args=')
