"""Every shipped config parses and builds; every ablation switch documented in docs/multisiam.md works."""
import glob
import os.path as osp
import re
import shlex

import pytest
from conftest import ROOT, apply_cfg_options, build_parts, config_value
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

init_default_scope('mmpretrain')
CONFIGS = sorted(p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True) if '_base_' not in p)
ABLATION = osp.join(ROOT, 'configs', 'multisiam', 'ablations', 'multisiam_r50_8xb128-accum4-coslr-150e_waymo.py')


def documented_switches() -> list:
    """(table, row, [key=value ...]) from the ablation table of docs/multisiam.md."""
    rows = []
    row = re.compile(r'\|\s*([0-9A-Z][0-9A-Za-z., ]*?)\s*\|\s*(.+?)\s*\|\s*([0-9.—-]+)\s*\|\s*(`(.*)`|\(none\))\s*\|$')
    for line in open(osp.join(ROOT, 'docs', 'multisiam.md')):
        m = row.match(line.strip())
        if m:
            rows.append((m.group(1), m.group(2), shlex.split(m.group(5) or '')))
    return rows


def test_the_design_card_config_exists_with_the_paper_setting():
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'multisiam_waymo.py'))
    assert cfg.model.type == 'MultiSiam' and cfg.model.alignment == 'offset'
    assert cfg.model.backbone.depth == 50 and cfg.model.base_momentum == pytest.approx(0.004)
    assert cfg.train_dataloader.batch_size * 8 == 1024
    assert cfg.optim_wrapper.optimizer.type == 'LARS' and cfg.optim_wrapper.optimizer.lr == pytest.approx(4.0)
    assert cfg.optim_wrapper.optimizer.weight_decay == pytest.approx(1e-5)
    assert cfg.train_cfg.max_epochs == 325
    crop = cfg.train_dataloader.dataset.pipeline[1]
    assert crop.type == 'IoUPairCrop' and crop.iou_thr == 0.5 and crop.size == 224 and tuple(crop.scale) == (0.08, 1.0)


def test_ablation_config_is_the_paper_ablation_setting():
    cfg = Config.fromfile(ABLATION)
    assert cfg.train_cfg.max_epochs == 150 and cfg.optim_wrapper.accumulative_counts == 4
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(0.3 * 4096 / 256)
    assert cfg.model.alignment == 'roi' and cfg.model.cluster_head.self_attention is False


def test_docs_list_every_ablation_of_tables_2_to_4_and_a4_a5():
    tables = {r[0] for r in documented_switches()}
    assert {'2a', '2b', '3a', '3b', '4', 'A4a', 'A4b', 'A4c', 'A5', 'B.1'} <= tables
    assert len(documented_switches()) >= 24


@pytest.mark.slow
@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_config_builds(config):
    build_parts(Config.fromfile(config))


@pytest.mark.slow
@pytest.mark.parametrize('row', documented_switches(), ids=lambda r: f'{r[0]}:{r[1]}')
def test_documented_ablation_switch_builds(row):
    cfg = apply_cfg_options(Config.fromfile(ABLATION), row[2])
    build_parts(cfg)
    for switch in row[2]:
        key, value = switch.split('=', 1)
        node = config_value(cfg, key)
        accepted = (value, value.replace("'", ''), value.replace('(', '[').replace(')', ']'))
        assert str(node).replace(' ', '') in accepted, (key, node, value)


def test_lars_excludes_every_norm_and_bias_parameter_as_byol_does():
    """BYOL's exclusions: BN weights/biases and all biases get no weight decay and no LARS adaptation."""
    from mmengine.optim import build_optim_wrapper
    from torch.nn.modules.batchnorm import _BatchNorm
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'multisiam_waymo.py'))
    cfg.model.backbone.update(depth=18, norm_cfg=dict(type='BN'))
    cfg.model.neck.update(in_channels=512, hid_channels=64)
    cfg.model.head.predictor.hid_channels = 64
    cfg.model.cluster_head.hid_channels = 64
    model = MODELS.build(cfg.model)
    groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
    group_of = {id(p): g for g in groups for p in g['params']}
    excluded = {id(p) for m in model.modules() if isinstance(m, _BatchNorm) for p in m.parameters()}
    excluded |= {id(p) for n, p in model.named_parameters() if n.endswith('.bias')}
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    for name, p in trainable:
        g = group_of[id(p)]
        if id(p) in excluded:
            assert g['weight_decay'] == 0 and g.get('lars_exclude', False), name
        else:
            assert g['weight_decay'] == pytest.approx(1e-5) and not g.get('lars_exclude', False), name
