"""The two-pass AD-DROP forward shared by every criterion (paper Fig. 3, steps 1-4).

The criterion supplies two callables and stays ignorant of attention:
``forward()`` runs the model on the batch, and ``make_target(first_output)`` returns a function
that maps a model output to the scalar attribution target, with pseudo labels fixed from the
first pass (so integrated gradients integrate one function).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

import torch

from .contract import MaskableAttention, attention_mode
from .attribution import (
    attention_attribution,
    gradient_attribution,
    integrated_gradients,
    output_gradient_attribution,
)
from .mask import addrop_mask, unexpanded


@dataclass
class AddropSettings:
    """The AD-DROP criterion options one step reads, validated (``config.settings_from_config``
    makes them from ``config.AddropConfig``; analyses and tests build them directly)."""
    p: float = 0.3
    q: float = 0.3
    attribution: str = "ga"
    iga_steps: int = 20
    strategy: str = "high"


@dataclass
class AddropStats:
    """Counts summed over the masked layers, kept as tensors so that logging syncs once."""
    dropped: List[torch.Tensor] = field(default_factory=list)
    valid: List[torch.Tensor] = field(default_factory=list)
    fallback: int = 0

    def totals(self):
        if not self.dropped:
            return 0, 0
        return torch.stack(self.dropped).sum(), torch.stack(self.valid).sum()


def addrop_forward(
    modules: List[MaskableAttention],
    forward: Callable[[], Any],
    make_target: Callable[[Any], Callable[[Any], torch.Tensor]],
    settings: AddropSettings,
    generator: Optional[torch.Generator] = None,
    attribution_forward: Optional[Callable[[], Any]] = None,
):
    """Returns ``(second_pass_output, stats)``. Only the second pass keeps a graph.

    ``attribution_forward`` runs the attribution passes; under DDP it is the unwrapped module,
    so that DDP sees exactly one forward per backward.
    """
    attribution_forward = attribution_forward or forward
    stats = AddropStats()
    scores: List[Optional[torch.Tensor]]
    if settings.attribution == "rd" or settings.strategy == "random":
        scores = [None] * len(modules)  # a random region needs no first pass
    else:
        needs_grad = settings.attribution == "ga"
        # GA's pass records what dF/dA needs, on the fused attention wherever it can
        mode = "gradient" if needs_grad else "record"
        with torch.set_grad_enabled(needs_grad), attention_mode(modules, mode):
            if settings.attribution == "aa":
                first = _forward_until_recorded(modules, attribution_forward)
            else:
                first = attribution_forward()
        probs = [m.recorded for m in modules]
        outputs = [m.recorded_output for m in modules]
        for m in modules:
            m.recorded, m.recorded_output = None, None
        if settings.attribution == "aa":
            del first
            scores = attention_attribution(probs)
        else:
            target_of = make_target(first)
            if settings.attribution == "ga":
                target = target_of(first)
                # the output (tokens x vocabulary logits) is not needed by the backward: free it
                del first
                scores = gradient_scores(target, probs, outputs)
                del target
            else:
                del first
                scores = integrated_gradients(
                    [a.detach() for a in probs],
                    lambda alpha: _gradient_at(modules, attribution_forward, target_of, probs, alpha),
                    settings.iga_steps,
                )
        del probs, outputs
        finite = torch.stack([s.isfinite().all() for s in scores]).all()
        if not bool(finite):
            # a NaN/inf gradient (e.g. fp16 overflow) would give a meaningless region: plain step
            stats.fallback = 1
            return forward(), stats

    def drop_fn(index):
        def make_drop(valid):
            score = scores[index]
            if score is None and settings.attribution != "rd" and settings.strategy != "random":
                raise RuntimeError("an AD-DROP attention module ran twice in one pass")
            # each layer's scores are freed as soon as its mask exists, not at the pass's end
            scores[index] = None
            # scores reaching here passed the finite check above
            drop = addrop_mask(score, valid, settings.p, settings.q, settings.strategy, generator,
                               finite=True)
            del score
            stats.dropped.append(drop.count_nonzero())
            stats.valid.append(valid_count(valid))
            return drop
        return make_drop

    with attention_mode(modules, "apply", drop_fns=[drop_fn(i) for i in range(len(modules))]):
        return forward(), stats


def gradient_scores(target: torch.Tensor, probs, outputs) -> List[torch.Tensor]:
    """GA for every module in one backward: dF/dA from the recorded probabilities, or
    (dF/dO) V^T from the fused attention's recorded output."""
    inputs = [p if o is None else o[0] for p, o in zip(probs, outputs)]
    grads = gradient_attribution(target, inputs)
    return [g if o is None else output_gradient_attribution(g, o[1])
            for g, o in zip(grads, outputs)]


def valid_count(valid: torch.Tensor) -> torch.Tensor:
    """Number of True entries, summed once per broadcast copy rather than over the copies."""
    copies = 1
    for size, stride in zip(valid.shape, valid.stride()):
        if stride == 0 and size > 1:
            copies *= size
    return unexpanded(valid).count_nonzero() * copies


def _gradient_at(modules, forward, target_of, probs, alpha: float) -> List[torch.Tensor]:
    replacements = [(alpha * a.detach()).requires_grad_() for a in probs]
    with torch.enable_grad(), attention_mode(modules, "record", replacements=replacements):
        output = forward()
    for m in modules:
        m.recorded = None
    target = target_of(output)
    del output
    return gradient_attribution(target, replacements)


class _AllRecorded(Exception):
    pass


def _forward_until_recorded(modules, forward):
    """AA reads the maps and nothing else: stop the pass once every masked module recorded,
    sparing the layers above the last one and the output projection over the vocabulary."""
    waiting = set(range(len(modules)))

    def recorded(index):
        def hook(_dropout, _args, _output):
            if modules[index].recorded is not None:
                waiting.discard(index)
                if not waiting:
                    raise _AllRecorded
        return hook

    handles = [m.dropout_module.register_forward_hook(recorded(i)) for i, m in enumerate(modules)]
    try:
        return forward()
    except _AllRecorded:
        return None
    finally:
        for handle in handles:
            handle.remove()
