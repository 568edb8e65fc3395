"""fairseq's MultiheadAttention with AD-DROP modes: off, record, gradient, apply.

Off (the default, and always in eval mode or with an incremental state) is fairseq's own code,
fast path included, so an ``addrop_transformer`` checkpoint is a ``transformer`` checkpoint.
Record takes fairseq's explicit path, which materialises the probabilities, through two hooks
it already has: ``apply_sparse_mask`` (scores before the softmax, where -inf goes) and
``dropout_module`` (the probabilities after the softmax, where they are recorded). Gradient
mode (GA's first pass) records what dF/dA needs: on PyTorch's fused attention, the per-head
output O = A V and V, since dF/dA = (dF/dO) V^T; where the fused path cannot give that (attention
dropout, a caller asking for the weights) it records the probabilities as record mode does.
Apply uses the explicit path when the caller wants the attention weights, and PyTorch's fused
attention with one additive mask otherwise.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, List, Optional

import torch
import torch.nn.functional as F
from fairseq.modules import MultiheadAttention

from ..core.contract import attention_mode  # noqa: F401  (re-exported for the models' users)

KINDS = ("encoder_self", "decoder_self", "encoder_decoder")

# fairseq marks forbidden positions in float attention masks with -inf or with -1e8 / -1e4
_MASKED_FLOAT = -1e4


class AddropMultiheadAttention(MultiheadAttention):
    """Adds no parameters: its state dict is fairseq's."""

    kind: str = "encoder_self"
    layer: int = 0

    def _reset_addrop(self) -> None:
        # None | "record" (probabilities) | "gradient" (what dF/dA needs) | "apply"
        self.addrop_mode: Optional[str] = None
        self.drop_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
        self.replacement: Optional[torch.Tensor] = None  # IGA: alpha * A used instead of A
        self.recorded: Optional[torch.Tensor] = None  # [B, H, T, S] probabilities, in the graph
        # gradient mode on the fused path: (O [B, H, T, D] in the graph, V [B, H, S, D])
        self.recorded_output = None
        self.valid: Optional[torch.Tensor] = None  # [B, 1, T, S] keys a query may attend to
        self._masks = None

    @classmethod
    def adopt(cls, module: MultiheadAttention, kind: str, layer: int) -> "AddropMultiheadAttention":
        """Turn a module fairseq built into this class in place.

        Swapping the class, rather than constructing anew, keeps every constructor argument that
        fairseq's layers pass (q-noise, xformers, kdim/vdim, cross-self-attention) exactly.
        """
        if kind not in KINDS:
            raise ValueError(f"attention kind {kind!r}: expected one of {KINDS}")
        if type(module) is not MultiheadAttention:
            raise TypeError(f"cannot adopt {type(module).__name__}: expected fairseq MultiheadAttention")
        module.__class__ = cls
        module.kind, module.layer = kind, layer
        module._reset_addrop()
        module.dropout_module.register_forward_pre_hook(module._tap_probabilities)
        return module

    def forward(self, query, key, value, key_padding_mask=None, incremental_state=None,
                need_weights=True, static_kv=False, attn_mask=None, before_softmax=False,
                need_head_weights=False):
        active = self.addrop_mode is not None and self.training and incremental_state is None
        if not active:
            return super().forward(query, key, value, key_padding_mask, incremental_state,
                                   need_weights, static_kv, attn_mask, before_softmax,
                                   need_head_weights)
        if self.bias_k is not None or self.add_zero_attn or self.use_xformers:
            raise NotImplementedError(
                "AD-DROP does not support attention with add_bias_kv, add_zero_attn or xformers")
        fused = not (need_weights or need_head_weights or before_softmax)
        if fused and self.addrop_mode == "apply" and self.drop_fn is not None:
            attn = self._fused_masked_attention(query, key, value, key_padding_mask, attn_mask)
            return attn, None
        if fused and self.addrop_mode == "gradient" and self.replacement is None and (
                self.dropout_module.p == 0 or not self.training):
            attn = self._fused_masked_attention(query, key, value, key_padding_mask, attn_mask,
                                                record=True)
            return attn, None
        self._masks = (key_padding_mask, attn_mask)
        skip = self.skip_embed_dim_check
        # fairseq's documented switch off the fused PyTorch kernel, onto its explicit path
        self.skip_embed_dim_check = True
        try:
            return super().forward(query, key, value, key_padding_mask, incremental_state,
                                   need_weights, static_kv, attn_mask, before_softmax,
                                   need_head_weights)
        finally:
            self.skip_embed_dim_check = skip
            self._masks = None

    def _fused_masked_attention(self, query, key, value, key_padding_mask, attn_mask,
                                record=False):
        """PyTorch's fused attention, which neither materialises nor saves the [B * H, T, S]
        probabilities that the explicit path keeps.

        Apply mode: padding, the causal mask and the drop mask become one additive mask.
        Record mode for gradient attribution (``record=True``, no attention dropout): only
        padding and the causal mask; the per-head output O = A V and the values V are recorded
        instead of A, since dF/dA = (dF/dO) V^T (see ``step.gradient_scores``)."""
        tgt_len, bsz, embed_dim = query.size()
        if self.self_attention:
            key = value = query
        elif self.encoder_decoder_attention:
            value = key  # fairseq projects the encoder output for both keys and values
        src_len = key.size(0)
        if key_padding_mask is not None and key_padding_mask.dim() == 0:
            key_padding_mask = None
        heads, head_dim = self.num_heads, self.head_dim
        # calling the projection modules (not F.linear on their weights) keeps q-noise hooks
        q = self.q_proj(query).view(tgt_len, bsz, heads, head_dim).permute(1, 2, 0, 3)
        k = self.k_proj(key).view(src_len, bsz, heads, head_dim).permute(1, 2, 0, 3)
        v = self.v_proj(value).view(src_len, bsz, heads, head_dim).permute(1, 2, 0, 3)
        self.valid = valid_keys(key_padding_mask, attn_mask, bsz, tgt_len, src_len, query.device)
        if record:
            # [B, 1, T, S]: heads share it, the kernel broadcasts it
            attn = F.scaled_dot_product_attention(
                q, k, v, attn_mask=additive_mask(~self.valid, q.dtype), scale=self.scaling)
            self.recorded_output = (attn, v)
        else:
            blocked = self.drop_fn(self.valid.expand(bsz, heads, tgt_len, src_len)) | ~self.valid
            dropout = self.dropout_module
            rate = dropout.p if dropout.p > 0 and (
                self.training or dropout.apply_during_inference) else 0.0
            attn = masked_attention(q, k, v, blocked, rate, self.scaling)
        return self.out_proj(attn.permute(2, 0, 1, 3).reshape(tgt_len, bsz, heads * head_dim))

    def apply_sparse_mask(self, attn_weights, tgt_len: int, src_len: int, bsz: int):
        if self._masks is None:
            return attn_weights
        self.valid = valid_keys(*self._masks, bsz, tgt_len, src_len, attn_weights.device)
        if self.addrop_mode != "apply" or self.drop_fn is None:
            return attn_weights
        drop = self.drop_fn(self.valid.expand(bsz, self.num_heads, tgt_len, src_len))
        return attn_weights.masked_fill(drop.view(bsz * self.num_heads, tgt_len, src_len),
                                        float("-inf"))

    def _tap_probabilities(self, _dropout, args):
        if self._masks is None or self.addrop_mode not in ("record", "gradient"):
            return None
        probs = args[0]
        shaped = probs.view(-1, self.num_heads, probs.size(-2), probs.size(-1))
        if self.replacement is not None:
            shaped = self.replacement
        # the recorded tensor must be the one the rest of the layer consumes, or it has no gradient
        self.recorded = shaped
        return (shaped.view(probs.shape),) + tuple(args[1:])


def valid_keys(key_padding_mask, attn_mask, bsz, tgt_len, src_len, device) -> torch.Tensor:
    """[B, 1 or H, T, S] boolean: True where a query may attend to a key (not padding, not future)."""
    valid = torch.ones(bsz, 1, tgt_len, src_len, dtype=torch.bool, device=device)
    if key_padding_mask is not None:
        valid = valid & ~key_padding_mask.bool().view(bsz, 1, 1, src_len)
    if attn_mask is not None:
        blocked = attn_mask if attn_mask.dtype == torch.bool else attn_mask <= _MASKED_FLOAT
        if blocked.dim() == 3:  # one mask per (batch, head): [B * H, T, S]
            blocked = blocked.view(bsz, -1, tgt_len, src_len)
        valid = valid & ~blocked.view(-1, blocked.size(-3) if blocked.dim() == 4 else 1,
                                      tgt_len, src_len)
    return valid


def additive_mask(blocked: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 where a key is allowed, the dtype's lowest finite value where ``blocked``.

    Two vectorised passes (0 * min = 0); ``masked_fill``/``where`` with -inf are several times
    slower on CPU. A finite value keeps a row without any allowed key finite (uniform) instead
    of NaN, and its exponential is exactly 0 in the kernels' float32 softmax, as -inf's is."""
    return blocked.to(dtype).mul_(torch.finfo(dtype).min)


class _CpuMaskedAttention(torch.autograd.Function):
    """PyTorch's CPU flash attention with an additive mask, saving the boolean ``blocked``
    [B, H, T, S] (1 byte per position) for the backward instead of the additive mask that
    ``F.scaled_dot_product_attention`` would keep (4 bytes per position in fp32): the mask
    is rebuilt in the backward. Same kernels, same numbers."""

    @staticmethod
    def forward(ctx, q, k, v, blocked, scale):
        mask = additive_mask(blocked, q.dtype)
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, 0.0, False, attn_mask=mask, scale=scale)
        ctx.save_for_backward(q, k, v, out, lse, blocked)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse, blocked = ctx.saved_tensors
        grads = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
            grad_out.contiguous(), q, k, v, out, lse, 0.0, False,
            attn_mask=additive_mask(blocked, q.dtype), scale=ctx.scale)
        return grads[0], grads[1], grads[2], None, None


def masked_attention(q, k, v, blocked: torch.Tensor, dropout_p: float, scale: float):
    """softmax(q k^T * scale, -inf where ``blocked``) v with attention dropout, fused."""
    if q.device.type == "cpu" and dropout_p == 0.0 and q.dtype in (torch.float32, torch.bfloat16) \
            and hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
        return _CpuMaskedAttention.apply(q, k, v, blocked.contiguous(), scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=additive_mask(blocked, q.dtype),
                                          dropout_p=dropout_p, scale=scale)


def adopt_attention(layers: Iterable[torch.nn.Module], attribute: str, kind: str) -> None:
    for index, layer in enumerate(layers):
        module = getattr(layer, attribute, None)
        if module is not None:
            AddropMultiheadAttention.adopt(module, kind, index)


def maskable_attention(model: torch.nn.Module) -> List[AddropMultiheadAttention]:
    """The model's attention modules that AD-DROP can mask, in forward order; ``--addrop-modules``
    (attention kinds) and ``--addrop-layers`` select among them (``config.select_modules``)."""
    return [m for m in model.modules() if isinstance(m, AddropMultiheadAttention)]
