"""``addrop_marian``: an ``addrop_transformer`` that computes what Hugging Face's MarianMT computes.

OPUS-MT checkpoints converted by ``addrop-convert-opus-mt`` run on it, AD-DROP attention
included. Where fairseq's transformer and Marian's trained weights disagree, this model follows
Marian:

- positions: Marian's sinusoids (all sines, then all cosines, frequency 10000^(-2i/d)) counted
  from 0 at the first real token; fairseq's use 10000^(-i/(d/2-1)) and count from pad + 1;
- activation: ``--marian-activation-fn`` (OPUS-MT uses swish, which fairseq 0.12's
  ``--activation-fn`` lacks); ``--activation-fn`` is ignored;
- output: Marian's ``final_logits_bias``, a buffer that fine-tuning leaves alone, as in
  transformers;
- decoding start: fairseq feeds eos as the first decoder input where Marian feeds pad, so an eos
  *input* reads the pad row of the shared table (the padding mask and the positions still treat
  it as a real token);
- ``<s>``: fairseq's dictionary always has it and Marian's vocabulary normally does not. Its
  logit is held 100 below the smallest real one, so the softmax over Marian's symbols is
  Marian's (``--marian-has-bos`` turns this off for a vocabulary with a real ``<s>``).

Post-LN, embedding scale, layer-norm epsilon and dropouts are ordinary options that the converter
sets from the Marian config.
"""

import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.models import register_model, register_model_architecture
from fairseq.models.transformer import (
    TransformerConfig,
    TransformerDecoderBase,
    TransformerEncoderBase,
)
from fairseq.models.transformer.transformer_legacy import base_architecture
from fairseq.modules import gelu, gelu_accurate
from fairseq.utils import safe_getattr
from torch import nn

from ..errors import AddropError
from .addrop_transformer import AddropTransformerModel

# Marian/transformers names for the feed-forward activation
MARIAN_ACTIVATIONS = {
    "swish": F.silu,
    "silu": F.silu,
    "gelu": gelu,
    "gelu_new": gelu_accurate,
    "relu": F.relu,
}

_BOS_MARGIN = 100.0  # exp(-100) underflows float32: <s> takes no probability mass


def marian_sinusoids(num_positions: int, dim: int) -> torch.Tensor:
    """Marian's position table as transformers builds it (float64, then float32)."""
    position = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)
    feature = torch.arange(dim, dtype=torch.float64)
    angle = position / torch.pow(10000.0, 2 * torch.div(feature, 2, rounding_mode="floor") / dim)
    sines = (dim + 1) // 2
    table = torch.empty(num_positions, dim, dtype=torch.float64)
    table[:, :sines] = torch.sin(angle[:, 0::2])
    table[:, sines:] = torch.cos(angle[:, 1::2])
    return table.float()


class MarianPositionalEmbedding(nn.Module):
    """Marian's positions behind fairseq's positional-embedding interface.

    Counting starts at the first non-padding token, so a left-padded fairseq source gets the
    positions that Marian gives the same sentence unpadded.
    """

    def __init__(self, num_positions: int, dim: int, padding_idx: int):
        super().__init__()
        self.padding_idx = padding_idx
        self.max_positions = num_positions
        # row 0 serves padding; row k + 1 holds Marian's position k. Not saved: it is a formula.
        table = torch.cat([torch.zeros(1, dim), marian_sinusoids(num_positions, dim)])
        self.register_buffer("table", table, persistent=False)

    def forward(self, tokens, incremental_state=None, timestep=None, positions=None):
        if incremental_state is not None:
            # one step of incremental decoding: the prefix has no padding, the new token is last
            row = tokens.size(1) if timestep is None else int(timestep.view(-1)[0]) + 1
            return self.table[row].expand(tokens.size(0), 1, -1)
        rows = utils.make_positions(tokens, self.padding_idx) - self.padding_idx
        return self.table[rows]


class MarianDecoderInputEmbedding(nn.Embedding):
    """The shared table as the decoder reads it: an eos input reads Marian's start row (pad).

    Holds the very Parameter of the shared table, so encoder, decoder and output projection
    still train one tensor, and the state-dict key stays ``decoder.embed_tokens.weight``.
    """

    def __init__(self, shared: nn.Embedding, start_symbol: int):
        super().__init__(shared.num_embeddings, shared.embedding_dim, shared.padding_idx,
                         _weight=shared.weight.detach())
        self.weight = shared.weight
        self.start_symbol = start_symbol

    def forward(self, tokens):
        return super().forward(tokens.masked_fill(tokens.eq(self.start_symbol), self.padding_idx))


class MarianEncoder(TransformerEncoderBase):
    def __init__(self, cfg, dictionary, embed_tokens, return_fc=False):
        super().__init__(cfg, dictionary, embed_tokens, return_fc=return_fc)
        self.embed_positions = MarianPositionalEmbedding(
            cfg.max_source_positions, embed_tokens.embedding_dim, self.padding_idx)


class MarianDecoder(TransformerDecoderBase):
    def __init__(self, cfg, dictionary, embed_tokens, no_encoder_attn=False):
        super().__init__(cfg, dictionary,
                         MarianDecoderInputEmbedding(embed_tokens, dictionary.eos()),
                         no_encoder_attn=no_encoder_attn)
        self.embed_positions = MarianPositionalEmbedding(
            cfg.max_target_positions, self.embed_dim, self.padding_idx)
        self.register_buffer("final_logits_bias", torch.zeros(len(dictionary)))
        self.bos = dictionary.bos()
        self.suppress_bos_output = False

    def output_layer(self, features):
        logits = self.output_projection(features) + self.final_logits_bias.to(features.dtype)
        if not self.suppress_bos_output:
            return logits
        floor = logits.detach().min(dim=-1, keepdim=True).values - _BOS_MARGIN
        is_bos = torch.arange(logits.size(-1), device=logits.device) == self.bos
        return torch.where(is_bos, floor, logits)


def _is_layer_norm(module: nn.Module) -> bool:
    # torch's LayerNorm, or apex's fused one that fairseq substitutes on GPUs
    return isinstance(module, nn.LayerNorm) or (
        type(module).__name__.endswith("LayerNorm") and hasattr(module, "eps"))


def set_layer_norm_eps(model: nn.Module, eps: float) -> None:
    for module in model.modules():
        if _is_layer_norm(module):
            module.eps = eps


@register_model("addrop_marian")
class AddropMarianModel(AddropTransformerModel):
    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        parser.add_argument("--marian-activation-fn", choices=sorted(MARIAN_ACTIVATIONS),
                            help="feed-forward activation, as Marian names it (OPUS-MT: swish); "
                                 "replaces --activation-fn")
        parser.add_argument("--layernorm-eps", type=float, metavar="EPS",
                            help="epsilon of every layer norm (transformers' Marian: 1e-5)")
        parser.add_argument("--marian-has-bos", action="store_true",
                            help="the vocabulary has a real <s> symbol; otherwise fairseq's <s> "
                                 "is kept out of the softmax")

    @classmethod
    def build_model(cls, args, task):
        marian_architecture(args)
        if args.marian_activation_fn not in MARIAN_ACTIVATIONS:
            raise AddropError(f"--marian-activation-fn={args.marian_activation_fn!r}: expected one "
                              f"of {sorted(MARIAN_ACTIVATIONS)}")
        model = super().build_model(args, task)
        activation = MARIAN_ACTIVATIONS[args.marian_activation_fn]
        for layer in [*model.encoder.layers, *model.decoder.layers]:
            layer.activation_fn = activation
        set_layer_norm_eps(model, args.layernorm_eps)
        model.decoder.suppress_bos_output = not args.marian_has_bos
        return model

    @classmethod
    def build_encoder(cls, args, src_dict, embed_tokens):
        return MarianEncoder(TransformerConfig.from_namespace(args), src_dict, embed_tokens)

    @classmethod
    def build_decoder(cls, args, tgt_dict, embed_tokens):
        cfg = TransformerConfig.from_namespace(args)
        return MarianDecoder(cfg, tgt_dict, embed_tokens, no_encoder_attn=cfg.no_cross_attention)

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        if strict and "decoder.final_logits_bias" not in state_dict:
            raise AddropError(
                "the checkpoint is not an addrop_marian one (it has no decoder.final_logits_bias); "
                "convert OPUS-MT models with addrop-convert-opus-mt, or train this "
                "checkpoint's own --arch")
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)


@register_model_architecture("addrop_marian", "addrop_marian")
def marian_architecture(args):
    """OPUS-MT's transformer base: 6 + 6 post-LN layers, 512 wide, one shared table, swish."""
    args.share_all_embeddings = safe_getattr(args, "share_all_embeddings", True)
    args.encoder_normalize_before = safe_getattr(args, "encoder_normalize_before", False)
    args.decoder_normalize_before = safe_getattr(args, "decoder_normalize_before", False)
    args.max_source_positions = safe_getattr(args, "max_source_positions", 512)
    args.max_target_positions = safe_getattr(args, "max_target_positions", 512)
    args.attention_dropout = safe_getattr(args, "attention_dropout", 0.0)
    args.activation_dropout = safe_getattr(args, "activation_dropout", 0.0)
    args.marian_activation_fn = safe_getattr(args, "marian_activation_fn", "swish")
    args.layernorm_eps = safe_getattr(args, "layernorm_eps", 1e-5)
    args.marian_has_bos = safe_getattr(args, "marian_has_bos", False)
    base_architecture(args)
