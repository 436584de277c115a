"""Transfer: backbone extraction, key layouts, strict loading into mmseg / mmdet benchmark models, tools/finetune.py."""
import glob
import importlib.util
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from conftest import ROOT, apply_cfg_options, tiny_runner_cfg
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmpretrain.registry import MODELS as PRETRAIN_MODELS

from multisiam_mm.engine import StrictBackboneLoadHook
from multisiam_mm.utils.backbone_export import (
    BackboneKeyError,
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


def load_tool(name: str):
    """A tools/ script as a module (its main() runs in this process)."""
    spec = importlib.util.spec_from_file_location(f'tool_{name}', osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    with pytest.raises(BackboneKeyError, match=r'missing keys \(\d+\): .*conv1\.weight.*\n.*unexpected keys.*'
                                               r'stem\.conv1\.weight'):
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
    bad = str(tmp_path / 'bad.pth')
    torch.save({'state_dict': {'encoder.conv.weight': torch.zeros(1)}}, bad)
    with pytest.raises(SystemExit, match=r'no online backbone keys .* prefixes found: encoder\.conv\.'):
        tool.main([bad, out])


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
        '--launcher slurm --gpus 8 --partition p --gpus-per-node 8')
