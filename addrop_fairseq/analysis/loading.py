"""A checkpoint with its task, criterion and data, and its criterion run on a batch with or
without AD-DROP's masks, shared by the analyses.

The checkpoint loads as every evaluation loads one (``scoring.checkpoint``); the criterion is the
one the checkpoint was trained with (its AD-DROP settings included), built by the task.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, List, Optional

import torch

from ..modules.attention import AddropMultiheadAttention, maskable_attention
from ..config import select_modules
from ..criterions.two_pass import AddropCriterionMixin, ModelProxy
from ..errors import AddropError
from ..scoring.checkpoint import Checkpoint, load_split, to_device
from ..scoring.checkpoint import load_checkpoint as load_model_and_task


@dataclass
class Loaded(Checkpoint):
    criterion: object = None


def load_checkpoint(path: str, data: str, splits=(), cpu: bool = False) -> Loaded:
    """The model (eval mode), its config, task and AD-DROP criterion; ``splits`` are loaded."""
    loaded = load_model_and_task(path, data, cpu=cpu)
    cfg = loaded.cfg
    criterion = loaded.task.build_criterion(cfg.criterion)
    if not isinstance(criterion, AddropCriterionMixin):
        raise AddropError(f"{path}: trained with --criterion {cfg.criterion._name}, which has no "
                          "AD-DROP attribution target; the analyses need an addrop_* criterion")
    criterion.eval()
    loaded = Loaded(**vars(loaded), criterion=criterion)
    for split in splits:
        load_split(loaded, split)
    return loaded


def chosen_modules(model, kinds: str, layers: str) -> List[AddropMultiheadAttention]:
    """The attention modules ``--addrop-modules KINDS --addrop-layers LAYERS`` selects in training,
    in the order training draws their masks (forward order)."""
    return select_modules(maskable_attention(model), kinds, layers)


def example(loaded: Loaded, split: str, index: int):
    """A batch of one: example ``index`` (its line in the split's file)."""
    dataset = loaded.task.dataset(split)
    if not 0 <= index < len(dataset):
        raise AddropError(f"--index {index}: split {split!r} has {len(dataset)} examples "
                          f"(0..{len(dataset) - 1})")
    return to_device(dataset.collater([dataset[index]]), loaded.device)


@contextmanager
def inference_masking(modules: List[AddropMultiheadAttention]):
    """Lets the chosen modules record and apply masks while the model is in eval mode.

    The attention module acts only in training mode; here only its own flag is set (its
    children, the rest of the model and every other dropout stay in eval mode) and its attention
    dropout rate is 0, so the passes are deterministic evaluations."""
    saved = [(m.training, m.dropout_module.p) for m in modules]
    for m in modules:
        m.training = True
        m.dropout_module.p = 0.0
    try:
        yield
    finally:
        for m, (training, p) in zip(modules, saved):
            m.training, m.dropout_module.p = training, p


MaskObserver = Callable[[AddropMultiheadAttention, torch.Tensor, torch.Tensor], None]


def plain_pass(criterion, model, sample):
    """The criterion's evaluation of one batch, as fairseq's validation runs it:
    ``(loss, sample_size, logging_output, model_calls)``."""
    calls = []

    def call(*args, **kwargs):
        calls.append((args, kwargs))
        return model(*args, **kwargs)

    with torch.no_grad():
        loss, sample_size, log = criterion(ModelProxy(model, call), sample)
    return loss, sample_size, log, calls


def addrop_pass(criterion, model, sample, modules, settings, generator=None,
                observe: Optional[MaskObserver] = None):
    """The criterion's evaluation of one batch with the model call replaced by training's
    two-pass forward (``step.addrop_forward``, as ``AddropCriterionMixin.addrop_call`` does in
    training): attribution of the first pass, masks from ``mask.addrop_mask``, the criterion's
    loss and metrics on the masked second pass. ``observe(module, valid, drop)`` sees every
    mask the second pass applies. Returns ``(loss, sample_size, logging_output, stats)``."""
    from ..core.step import addrop_forward

    stats = []

    def call(*args, **kwargs):
        def second_pass():
            if observe is not None:
                for m in modules:
                    if m.drop_fn is not None:  # None when the first pass fell back to plain
                        m.drop_fn = _observed(m, m.drop_fn, observe)
            with torch.no_grad():
                return model(*args, **kwargs)

        output, step_stats = addrop_forward(
            modules, forward=second_pass, attribution_forward=lambda: model(*args, **kwargs),
            make_target=lambda first: criterion.attribution_target(model, sample, first),
            settings=settings, generator=generator)
        stats.append(step_stats)
        return output

    # gradients stay on: step.addrop_forward takes the attribution target's gradient after its
    # first pass, as in training; the second pass above runs without a graph
    with torch.enable_grad(), inference_masking(modules):
        loss, sample_size, log = criterion(ModelProxy(model, call), sample)
    if len(stats) != 1:
        raise AddropError(f"the criterion called the model {len(stats)} times on one batch")
    return loss, sample_size, log, stats[0]


def _observed(module, drop_fn, observe):
    def observed(valid):
        drop = drop_fn(valid)
        observe(module, valid, drop)
        return drop
    return observed


def expected_removed(n: torch.Tensor, share: float) -> torch.Tensor:
    """Keys a row of ``n`` valid keys loses when the top ``share`` is removed outright
    (q = 1): ``ceil(share * n)`` (Eq. 6, as ``mask.candidate_count`` counts), but never the
    row's last key (``mask.sample_drop`` keeps one)."""
    from ..core.mask import candidate_count

    k = candidate_count(n.unsqueeze(-1) > torch.arange(int(n.max()) if n.numel() else 0,
                                                       device=n.device), share)
    return torch.minimum(k.squeeze(-1), (n - 1).clamp(min=0))


def finite(value) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
