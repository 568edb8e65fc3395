"""What every AD-DROP criterion adds to its fairseq parent: the two-pass forward and its logs.

A concrete criterion lists this mixin before its fairseq parent and defines only
``attribution_target``; the parent's loss and logging code run unchanged on the second pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from fairseq.logging import metrics

from ..modules.attention import maskable_attention
from ..config import select_modules, settings_from_config
from ..errors import AddropError
from ..core.step import addrop_forward


@dataclass
class Phase:
    """Set by the task around one training micro-batch.

    ``target_scale`` is the fp16/AMP loss scale: the attribution target is multiplied by it
    before its gradient is taken, for the reason the loss is (fp16 gradients underflow). The
    candidate region ranks scores, so a positive scale leaves it unchanged.
    """
    active: bool
    generator: Optional[torch.Generator] = None
    target_scale: float = 1.0


class ModelProxy:
    """Stands in for the model inside a criterion's forward: calling it calls ``call`` with the
    model call's arguments instead; every other attribute (get_targets, get_normalized_probs,
    training, ...) is the model's. The AD-DROP criteria run their fairseq parent's forward through
    it (training's two passes, validation's recorded output), and the analyses a checkpoint's
    criterion."""

    def __init__(self, model, call: Callable):
        self._model, self._call = model, call

    def __call__(self, *args, **kwargs):
        return self._call(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._model, name)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module under DDP/proxy wrappers: the attribution pass must not touch DDP's hooks."""
    while isinstance(getattr(model, "module", None), torch.nn.Module):
        model = model.module
    return model


def scaled_target(target: Callable[[object], torch.Tensor], scale: float
                  ) -> Callable[[object], torch.Tensor]:
    if scale == 1.0:
        return target
    return lambda output: target(output) * scale


class AddropCriterionMixin:
    def init_addrop(self, cfg) -> None:
        task = getattr(self, "task", None)
        if task is not None and not hasattr(task, "init_cross_tuning"):
            # a plain fairseq task never sets the phase: AD-DROP would silently never run
            task_name = getattr(getattr(task, "cfg", None), "_name", None) or type(task).__name__
            criterion_name = getattr(cfg, "_name", None) or type(self).__name__
            raise AddropError(
                f"--criterion {criterion_name} needs an AD-DROP task "
                f"(--task addrop_*), which schedules it; --task {task_name} cannot honour the "
                "--addrop-* options")
        self.addrop_settings = settings_from_config(cfg)
        self.addrop_target = str(cfg.addrop_target)
        self.addrop_kinds, self.addrop_layers = cfg.addrop_modules, cfg.addrop_layers
        self.addrop_phase: Optional[Phase] = None
        self._masked = None

    def bind_model(self, model: torch.nn.Module) -> None:
        """Selects (and so validates) the masked attention modules once the model exists."""
        self._masked = select_modules(maskable_attention(unwrap(model)), self.addrop_kinds,
                                      self.addrop_layers)

    def attribution_target(self, model, sample, first_output) -> Callable[[object], torch.Tensor]:
        """Returns output -> scalar F whose gradient w.r.t. attention gives the attribution."""
        raise NotImplementedError

    def addrop_call(self, parent_forward, model, sample, reduce=True):
        phase = self.addrop_phase
        if not model.training or phase is None or not phase.active:
            loss, sample_size, log = parent_forward(model, sample, reduce)
            if model.training:
                log.update(addrop_steps=1, addrop_active=0)
            return loss, sample_size, log
        inner = unwrap(model)
        if self._masked is None:
            self.bind_model(inner)
        stats = []

        def run(*args, **kwargs):
            output, step_stats = addrop_forward(
                self._masked,
                forward=lambda: model(*args, **kwargs),
                attribution_forward=lambda: inner(*args, **kwargs),
                make_target=lambda first: scaled_target(
                    self.attribution_target(inner, sample, first), phase.target_scale),
                settings=self.addrop_settings,
                generator=phase.generator,
            )
            stats.append(step_stats)
            return output

        loss, sample_size, log = parent_forward(ModelProxy(model, run), sample, reduce)
        dropped, valid = stats[0].totals()
        log.update(addrop_steps=1, addrop_active=1, addrop_dropped=dropped,
                   addrop_valid=valid, addrop_fallback=stats[0].fallback)
        return loss, sample_size, log

    @staticmethod
    def reduce_addrop_metrics(logging_outputs) -> None:
        def total(key):
            return float(sum(log.get(key, 0) for log in logging_outputs))

        steps = total("addrop_steps")
        if steps == 0:  # validation: AD-DROP never runs there
            return
        metrics.log_scalar("addrop", total("addrop_active") / steps, steps, round=2)
        valid = total("addrop_valid")
        # weight 0 on plain steps: the meter shows 0 in a plain epoch, instead of a stale None,
        # and leaves the average over AD-DROP steps untouched where phases mix
        metrics.log_scalar("addrop_drop", total("addrop_dropped") / valid if valid else 0.0,
                           valid, round=4)
        if total("addrop_fallback"):
            metrics.log_scalar_sum("addrop_fallback", total("addrop_fallback"))
