"""What the two-pass step needs of an attention module, written down once.

``modules.attention.AddropMultiheadAttention`` is the implementation fairseq models use; the step
(``core.step``) and the analyses see only this protocol, so the AD-DROP mathematics never imports
fairseq.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional, Protocol, Sequence, Tuple

import torch

# None: the module's own fast forward. "record": keep the softmax probabilities A in the graph.
# "gradient": keep what dF/dA needs (A, or O = A V and V on a fused path). "apply": add -inf
# where drop_fn says, before the softmax.
MODES = (None, "record", "gradient", "apply")


class MaskableAttention(Protocol):
    addrop_mode: Optional[str]
    # called once per forward in "apply" mode with the [B, 1|H, T, S] valid-key mask; returns the
    # boolean positions to drop
    drop_fn: Optional[Callable[[torch.Tensor], torch.Tensor]]
    replacement: Optional[torch.Tensor]  # integrated gradients: alpha * A used instead of A
    recorded: Optional[torch.Tensor]  # [B, H, T, S] probabilities of the last recording pass
    recorded_output: Optional[Tuple[torch.Tensor, torch.Tensor]]  # (O in the graph, V)
    # the probabilities pass through it after the softmax; the step hooks it to stop a pass early
    dropout_module: torch.nn.Module


@contextmanager
def attention_mode(modules: Sequence[MaskableAttention], mode: Optional[str],
                   drop_fns=None, replacements=None) -> Iterator[None]:
    """Puts ``modules`` in ``mode`` for one forward pass; always leaves them off afterwards."""
    if mode not in MODES:
        raise ValueError(f"attention mode {mode!r}: expected one of {MODES}")
    for i, m in enumerate(modules):
        m.addrop_mode = mode
        m.drop_fn = drop_fns[i] if drop_fns is not None else None
        m.replacement = replacements[i] if replacements is not None else None
    try:
        yield
    finally:
        for m in modules:
            m.addrop_mode, m.drop_fn, m.replacement = None, None, None


__all__: List[str] = ["MODES", "MaskableAttention", "attention_mode"]
