"""Load an extracted backbone into a fine-tuning model strictly (zero missing, zero unexpected keys).

Why a hook and not ``backbone.init_cfg=dict(type='Pretrained', checkpoint=...)``: mmengine's ``PretrainedInit`` calls
``load_checkpoint(..., strict=False)``, which only *logs* missing and unexpected keys. A backbone with other names
(mmseg's FCN base configs use the deep-stem ``ResNetV1c``; our checkpoints are plain ``ResNet``) then trains from a
partly random initialisation and nothing fails. This hook fails instead, naming the keys.

Registered into mmengine's root ``HOOKS`` registry, so configs find it under any default scope (``mmseg``, ``mmdet``,
``mmpretrain``): a child registry looks a type up in itself, then in its parents.
"""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ...utils.backbone_export import load_backbone_strict, load_state_dict_file, resolve_checkpoint

CONFIG_KEY = 'backbone_checkpoint'


@HOOKS.register_module()
class StrictBackboneLoadHook(Hook):
    """Copy a backbone-only checkpoint into ``runner.model.backbone`` with ``strict=True`` semantics.

    Applied in ``before_train`` and ``before_test``, i.e. after the Runner's ``init_weights`` (which would overwrite
    it), and skipped when the Runner has already loaded a full checkpoint (``resume`` / ``load_from``): those carry
    the fine-tuned backbone.

    Args:
        checkpoint: path of the extracted backbone (``tools/extract_backbone.py``, mmpretrain layout). ``None`` reads
            the top-level config variable ``backbone_checkpoint``, so ``--cfg-options backbone_checkpoint=PATH``
            overrides it (a config variable used inside ``custom_hooks`` would be frozen when the file is parsed).
    """

    priority = 'VERY_HIGH'

    def __init__(self, checkpoint: Optional[str] = None) -> None:
        self.checkpoint = checkpoint

    def _load(self, runner) -> None:
        if getattr(runner, '_has_loaded', False):
            runner.logger.info('StrictBackboneLoadHook: a full checkpoint was loaded (resume/load_from); skipped')
            return
        checkpoint = self.checkpoint or runner.cfg.get(CONFIG_KEY)
        if not checkpoint:
            raise ValueError(f'StrictBackboneLoadHook needs a checkpoint: set the config variable {CONFIG_KEY} '
                             f'(--cfg-options {CONFIG_KEY}=PATH) or the hook argument checkpoint')
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        load_backbone_strict(model.backbone, load_state_dict_file(resolve_checkpoint(checkpoint)))
        runner.logger.info(f'StrictBackboneLoadHook: loaded backbone from {checkpoint} (strict)')
        runner._has_loaded = True  # a later before_test of the same runner keeps the fine-tuned weights

    def before_train(self, runner) -> None:
        """Load the backbone before the first training iteration."""
        self._load(runner)

    def before_test(self, runner) -> None:
        """Load the backbone before testing a model that no checkpoint was loaded into."""
        self._load(runner)
