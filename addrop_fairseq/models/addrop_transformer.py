"""``addrop_transformer``: fairseq's transformer whose attention modules can run AD-DROP.

Same parameters and state-dict keys as ``transformer``: checkpoints load either way. Every
fairseq ``transformer_*`` size is registered again as ``addrop_transformer_*``.
"""
from __future__ import annotations

from fairseq.models import (
    ARCH_CONFIG_REGISTRY,
    ARCH_MODEL_NAME_REGISTRY,
    register_model,
    register_model_architecture,
)
from fairseq.models.transformer import TransformerModel
from fairseq.models.transformer.transformer_legacy import base_architecture

from ..modules.attention import adopt_attention


def install_addrop_attention(model) -> None:
    """Turns the attention modules of a built encoder-decoder into AD-DROP ones, in place."""
    adopt_attention(model.encoder.layers, "self_attn", "encoder_self")
    adopt_attention(model.decoder.layers, "self_attn", "decoder_self")
    adopt_attention(model.decoder.layers, "encoder_attn", "encoder_decoder")


@register_model("addrop_transformer")
class AddropTransformerModel(TransformerModel):
    @classmethod
    def build_model(cls, args, task):
        model = super().build_model(args, task)
        install_addrop_attention(model)
        return model


register_model_architecture("addrop_transformer", "addrop_transformer")(base_architecture)

for _arch in [a for a, m in ARCH_MODEL_NAME_REGISTRY.items()
              if m == "transformer" and a.startswith("transformer_")]:
    register_model_architecture("addrop_transformer", f"addrop_{_arch}")(ARCH_CONFIG_REGISTRY[_arch])
