"""What every AD-DROP task adds to its fairseq parent: the cross-tuning phase of each step."""
from __future__ import annotations

import logging

import torch
import torch.distributed as dist

from ..config import validate_schedule
from ..criterions.two_pass import AddropCriterionMixin, Phase
from ..errors import AddropError
from ..schedule import addrop_active

logger = logging.getLogger(__name__)


def step_generator(seed: int, num_updates: int, rank: int, micro_batch: int,
                   device: torch.device) -> torch.Generator:
    """AD-DROP's draws depend on (seed, update, rank, micro-batch) only, so resuming replays them."""
    generator = torch.Generator(device=device)
    generator.manual_seed(hash((seed, num_updates, rank, micro_batch)) & (2**63 - 1))
    return generator


class CrossTuningMixin:
    """List before the fairseq task in the bases; the task config includes AddropScheduleConfig."""

    def init_cross_tuning(self) -> None:
        validate_schedule(self.cfg)
        self._epoch = 1
        self._model = None
        self._micro = (-1, 0)  # (update, micro-batch index within it)

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        self._model = model
        return model

    def build_criterion(self, cfg, from_checkpoint=False):
        criterion = super().build_criterion(cfg, from_checkpoint)
        if isinstance(criterion, AddropCriterionMixin):
            if self._model is not None:
                criterion.bind_model(self._model)
        elif self.cfg.addrop_schedule != "off":
            raise AddropError(
                f"--task {self.task_name} with --addrop-schedule {self.cfg.addrop_schedule} needs an "
                f"AD-DROP criterion (addrop_*); got {type(criterion).__name__}. "
                "Use --addrop-schedule off for a plain baseline.")
        return criterion

    def begin_epoch(self, epoch, model):
        super().begin_epoch(epoch, model)
        self._epoch = epoch
        active = addrop_active(self.cfg.addrop_schedule, epoch, 0, self.cfg.addrop_alternate_updates)
        if self.cfg.addrop_schedule in ("cross", "always", "off"):
            logger.info(f"epoch {epoch:03d}: AD-DROP {'on' if active else 'off'} "
                        f"(--addrop-schedule {self.cfg.addrop_schedule})")

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        if not isinstance(criterion, AddropCriterionMixin):
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
        active = addrop_active(self.cfg.addrop_schedule, self._epoch, update_num,
                               self.cfg.addrop_alternate_updates)
        micro = self._micro[1] + 1 if self._micro[0] == update_num else 0
        self._micro = (update_num, micro)
        generator = None
        if active:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
            device = next(model.parameters()).device
            generator = step_generator(self.cfg.seed, update_num, rank, micro, device)
        criterion.addrop_phase = Phase(active, generator)
        try:
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
        finally:
            criterion.addrop_phase = None

    @property
    def task_name(self) -> str:
        return getattr(self, "_task_name", type(self).__name__)
