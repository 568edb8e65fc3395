"""Attribution scores for attention maps (paper Eqs. 2-3), free of fairseq.

Each function returns one score tensor per recorded attention map, shaped like the map.
"""
from __future__ import annotations

from typing import Callable, List, Sequence

import torch

METHODS = ("ga", "iga", "aa", "rd")


def gradient_attribution(target: torch.Tensor, probs: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """GA, Eq. 2: B = dF/dA for every recorded map in one backward pass.

    Only activation gradients are computed (parameters are not inputs of the call), and the
    graph is freed afterwards, so the first forward costs no memory during the second.
    """
    return list(torch.autograd.grad(target, list(probs)))


def output_gradient_attribution(grad_output: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """GA from the fused attention's output: O = A V, so dF/dA = (dF/dO) V^T.

    ``grad_output`` [B, H, T, D] is dF/dO, ``value`` [B, H, S, D]; returns [B, H, T, S]. One
    batched product per layer, instead of materialising and saving A in the first pass.
    """
    return grad_output @ value.detach().transpose(-1, -2)


def integrated_gradients(
    probs: Sequence[torch.Tensor],
    gradient_at: Callable[[float], Sequence[torch.Tensor]],
    steps: int,
) -> List[torch.Tensor]:
    """IGA, Eq. 3: B = A / m * sum_k dF(k/m A)/dA.

    ``gradient_at(alpha)`` runs the model with every recorded map replaced by ``alpha * A``
    (all layers together: one path integral over the joint input) and returns dF/dA there.
    """
    if steps < 1:
        raise ValueError(f"--addrop-iga-steps={steps} must be >= 1")
    total = [torch.zeros_like(a) for a in probs]
    for k in range(1, steps + 1):
        for acc, grad in zip(total, gradient_at(k / steps)):
            acc.add_(grad)
    return [a.detach() * acc / steps for a, acc in zip(probs, total)]


def attention_attribution(probs: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """AA: the attention probabilities themselves are the scores."""
    return [a.detach() for a in probs]
