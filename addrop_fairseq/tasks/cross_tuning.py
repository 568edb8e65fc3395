"""What every AD-DROP task adds to its fairseq parent: the cross-tuning phase of each step."""
from __future__ import annotations

import logging
import os

import torch
import torch.distributed as dist
from fairseq import utils
from fairseq.data import data_utils

from ..config import validate_schedule
from ..data.checks import check_split_files
from ..criterions.two_pass import AddropCriterionMixin, Phase
from ..errors import AddropError
from ..core.schedule import addrop_active
from .resume import early_stopping_state, restore_early_stopping

logger = logging.getLogger(__name__)


def step_generator(seed: int, num_updates: int, rank: int, micro_batch: int,
                   device: torch.device) -> torch.Generator:
    """AD-DROP's draws depend on (seed, update, rank, micro-batch) only, so resuming replays them."""
    generator = torch.Generator(device=device)
    generator.manual_seed(hash((seed, num_updates, rank, micro_batch)) & (2**63 - 1))
    return generator


def loss_scale(optimizer) -> float:
    """The scale fairseq's fp16 (DynamicLossScaler) or AMP (GradScaler) optimizer puts on the loss."""
    scaler = getattr(optimizer, "scaler", None)
    if scaler is None:
        return 1.0
    if hasattr(scaler, "loss_scale"):
        return float(scaler.loss_scale)
    if hasattr(scaler, "get_scale") and scaler.is_enabled():
        return float(scaler.get_scale())
    return 1.0


def splits_present(data_dir: str) -> str:
    """The split names fairseq-preprocess wrote under ``data_dir`` (and one level down)."""
    names = set()
    for root, dirs, files in os.walk(data_dir):
        names.update(f.split(".")[0] for f in files if f.endswith((".idx", ".bin")))
        if root != data_dir:
            dirs.clear()
    return ", ".join(sorted(names)) or "none"


class CrossTuningMixin:
    """List before the fairseq task in the bases; the task config includes AddropScheduleConfig."""

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        """fairseq's own start-up, with one-line errors for a missing directory or dictionary."""
        paths = utils.split_paths(cfg.data) if cfg.data else []
        if not paths:
            raise AddropError("no data directory given: pass the fairseq-preprocess output "
                              "directory as the first argument")
        for path in paths:
            if not os.path.isdir(path):
                raise AddropError(f"data directory {path!r} does not exist (expected the "
                                  "fairseq-preprocess output directory)")
        if (getattr(cfg, "source_lang", "") is None or getattr(cfg, "target_lang", "") is None) \
                and data_utils.infer_language_pair(paths[0]) == (None, None):
            raise AddropError(
                f"data directory {paths[0]!r} has no SPLIT.SRC-TGT.* files to infer the language "
                f"pair from (splits found: {splits_present(paths[0])}); pass --source-lang and "
                "--target-lang, or point it at fairseq-preprocess output")
        try:
            return super().setup_task(cfg, **kwargs)
        except FileNotFoundError as missing:
            name = missing.filename or str(missing)
            raise AddropError(f"data directory {paths[0]!r}: missing {name} (fairseq-preprocess "
                              "writes the dictionaries next to the binarized splits)") from None

    # what rewrites this task's data, for the message about a truncated binarized split
    prepare_command = "fairseq-preprocess"

    def check_binarized(self, split, epoch=1) -> None:
        paths = utils.split_paths(self.cfg.data)
        if paths:
            check_split_files(paths[(epoch - 1) % len(paths)], split, self.prepare_command)

    def load_dataset(self, split, *args, **kwargs):
        self.check_binarized(split, kwargs.get("epoch", args[0] if args else 1))
        try:
            return super().load_dataset(split, *args, **kwargs)
        except FileNotFoundError as missing:
            data = utils.split_paths(self.cfg.data)[0]
            pair = ""
            if getattr(self.cfg, "source_lang", None) and getattr(self.cfg, "target_lang", None):
                pair = f" for {self.cfg.source_lang}-{self.cfg.target_lang}"
            raise AddropError(
                f"data directory {data!r} has no {split!r} split{pair} (splits found: "
                f"{splits_present(data)}; fairseq said: {missing})") from None

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

    def get_batch_iterator(self, dataset, **kwargs):
        # fairseq drops the last batch when its size is not a multiple of
        # --required-batch-size-multiple (8 by default): harmless for training, but validation
        # would silently skip sentences, so evaluation batches take any size
        train = self.datasets.get(getattr(self.cfg, "train_subset", "train"))
        if dataset is not train:
            kwargs["required_batch_size_multiple"] = 1
        # Resume: fairseq draws the batches (length ties are shuffled) with seed + epoch of the
        # epoch the iterator is first built for, and reuses them in every later epoch. An
        # uninterrupted run built them at epoch 1; a run resumed at epoch 3 would draw them at
        # epoch 3 and train on different batches from then on. So they are drawn as epoch 1
        # drew them; the iterator's own epoch (which orders the batches) is restored from the
        # checkpoint as before.
        epoch = kwargs.pop("epoch", 1)
        rebuilt_each_epoch = (kwargs.get("disable_iterator_cache", False)
                              or kwargs.get("update_epoch_batch_itr", False)
                              or getattr(self.cfg, "rebuild_batches", False)
                              or not self.can_reuse_epoch_itr(dataset))
        if epoch == 1 or rebuilt_each_epoch or dataset in self.dataset_to_epoch_iter:
            return super().get_batch_iterator(dataset, epoch=epoch, **kwargs)
        iterator = super().get_batch_iterator(dataset, epoch=1, **kwargs)
        iterator.epoch = epoch
        return iterator

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
        generator, scale = None, 1.0
        if active:
            scale = loss_scale(optimizer)
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
            device = next(model.parameters()).device
            generator = step_generator(self.cfg.seed, update_num, rank, micro, device)
        criterion.addrop_phase = Phase(active, generator, scale)
        try:
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
        finally:
            criterion.addrop_phase = None

    # fairseq stores this dictionary in every checkpoint's extra_state and hands the task its
    # entry back when it resumes (not when it starts from --finetune-from-model)
    def get_checkpoint_dict(self) -> dict:
        return {type(self).__name__: {"early_stopping": early_stopping_state()}}

    def set_checkpoint_dict(self, state: dict) -> None:
        restore_early_stopping(state.get("early_stopping", {}))

    @property
    def task_name(self) -> str:
        return getattr(self, "_task_name", type(self).__name__)
