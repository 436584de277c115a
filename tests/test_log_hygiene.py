"""Log hygiene: the frozen EMA target's parameters cost one start-up line, not one each; the documented switch to
mmengine's W&B / MLflow visualisation backends selects them."""
import logging
import os.path as osp
import shlex

import pytest
from conftest import ROOT, apply_cfg_options, tiny_model
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.visualization import Visualizer
from mmpretrain.registry import MODELS, VISUALIZERS

SKIPPED = 'is skipped since its requires_grad=False'


class _Records(logging.Handler):
    """Collects the formatted messages a logger emits."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def build_with(constructor: str, name: str):
    """(optim wrapper, model, logged messages) for the tiny MultiSiam and the LARS schedule's optim_wrapper (its
    paramwise BN / bias exclusions) with ``constructor``."""
    schedule = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'schedules', 'lars_coslr.py'))
    cfg = schedule.optim_wrapper.to_dict()
    cfg['constructor'] = constructor
    logger = MMLogger.get_instance(name, log_level='INFO')
    records = _Records()
    logger.addHandler(records)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(tiny_model())
        wrapper = build_optim_wrapper(model, cfg)
    logger.removeHandler(records)
    return wrapper, model, records.messages


def test_frozen_target_parameters_are_one_line():
    before, model, stock = build_with('DefaultOptimWrapperConstructor', 'hygiene_stock')
    after, model_after, ours = build_with('TrainableParamsOptimWrapperConstructor', 'hygiene_ours')
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith('target_net.') for n in frozen)
    assert sum(SKIPPED in m for m in stock) == len(frozen)  # mmengine: one WARNING per frozen parameter
    assert not any(SKIPPED in m for m in ours)
    summary = [m for m in ours if 'requires_grad=False left out' in m]
    assert summary == [f'optimizer: {len(frozen)} parameters with requires_grad=False left out '
                       f'(target_net: {len(frozen)})']
    # the same optimizer: same groups, same parameters (by name), same options
    names = [{id(p): n for n, p in m.named_parameters()} for m in (model, model_after)]
    assert len(before.optimizer.param_groups) == len(after.optimizer.param_groups)
    for a, b in zip(before.optimizer.param_groups, after.optimizer.param_groups):
        assert [names[0][id(p)] for p in a['params']] == [names[1][id(p)] for p in b['params']]
        assert {k: v for k, v in a.items() if k != 'params'} == {k: v for k, v in b.items() if k != 'params'}


def test_lars_configs_use_the_constructor():
    for path in ('configs/demo/multisiam_synthetic_demo.py', 'configs/multisiam_waymo.py'):
        assert Config.fromfile(osp.join(ROOT, path)).optim_wrapper.constructor == \
            'TrainableParamsOptimWrapperConstructor', path


def documented_cfg_options(backend: str) -> list:
    """The ``--cfg-options`` values of the README's command that switches to ``backend``."""
    readme = open(osp.join(ROOT, 'README.md')).read()
    lines = [line for line in readme.splitlines() if f'type={backend}' in line and line.startswith('python ')]
    assert len(lines) == 1, lines
    words = shlex.split(lines[0])
    return words[words.index('--cfg-options') + 1:]


@pytest.mark.parametrize('backend,attribute,value', [('WandbVisBackend', '_init_kwargs', {'project': 'multisiam'}),
                                                     ('MLflowVisBackend', '_exp_name', 'multisiam')])
def test_documented_visualisation_backend_switch(backend, attribute, value, tmp_path):
    """The README line builds the demo config's visualizer with mmengine's backend in place of TensorBoard (the
    backend's package, wandb or mlflow, is imported only when the first value is logged, so it is not needed
    here)."""
    cfg = apply_cfg_options(Config.fromfile(osp.join(ROOT, 'configs', 'demo', 'multisiam_synthetic_demo.py')),
                            documented_cfg_options(backend))
    types = [b['type'] for b in cfg.visualizer.vis_backends]
    assert types == ['LocalVisBackend', backend]
    vis_cfg = dict(cfg.visualizer, name=f'hygiene_{backend}', save_dir=str(tmp_path))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        vis: Visualizer = VISUALIZERS.build(vis_cfg)
    built = vis.get_backend(backend)
    assert built is not None and getattr(built, attribute) == value


def test_two_runs_started_in_the_same_second_write_their_own_logs(tmp_path, monkeypatch):
    """mmengine names a run's logger after its timestamp (to the second): two Runners built in the same second got
    one logger, writing into the first run's work_dir. tiny_runner_cfg gives each config its own experiment name."""
    import glob
    import time

    from conftest import tiny_runner_cfg
    from mmengine.runner import Runner
    frozen = time.localtime()
    monkeypatch.setattr(time, 'localtime', lambda *args: frozen)
    for name in ('a', 'b'):
        Runner.from_cfg(Config(tiny_runner_cfg('', str(tmp_path / name))))
        assert glob.glob(str(tmp_path / name / '*' / '*.log')), f'run {name} wrote no log of its own'
