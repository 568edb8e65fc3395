"""``addrop_hf_encoder``: fairseq's RoBERTa plus the two knobs that BERT and ELECTRA weights need.

``addrop-convert-hf-encoder`` turns a Hugging Face BERT, RoBERTa or ELECTRA into a fairseq
RoBERTa checkpoint (``encoder.sentence_encoder.*``, ``encoder.lm_head.*``). Positions, token
types and vocabulary order are settled by the conversion; two differences are left for run time:

- ``--layernorm-eps``: BERT and ELECTRA normalise with epsilon 1e-12, fairseq with 1e-5;
- ``--token-embed-dim``: ELECTRA-small's embeddings (128) are narrower than its layers (256); a
  linear projection follows the embedding layer norm (transformers' ``embeddings_project``) and
  the masked-LM head projects back to the embedding width.

With ``--layernorm-eps 1e-5`` and no ``--token-embed-dim`` this is ``roberta`` exactly: same
state-dict keys and the same numbers. Every layer's self-attention is an AD-DROP one, so the
AD-DROP criteria work on it; sentence_prediction's classification heads come from RobertaModel.
"""

from fairseq.models import register_model, register_model_architecture
from fairseq.models.roberta.model import (
    RobertaEncoder,
    RobertaLMHead,
    RobertaModel,
    base_architecture,
)
from fairseq.models.transformer import TransformerEncoder
from fairseq.modules.transformer_sentence_encoder import init_bert_params
from fairseq.modules import MultiheadAttention
from fairseq.utils import safe_getattr, safe_hasattr
from torch import nn

from ..modules.attention import AddropMultiheadAttention
from ..errors import AddropError
from .addrop_marian import set_layer_norm_eps


class HfSentenceEncoder(TransformerEncoder):
    """RoBERTa's sentence encoder; when the embeddings are narrower than the layers, a linear
    projection follows the embedding layer norm and dropout, as in ELECTRA."""

    def __init__(self, args, dictionary, embed_tokens):
        super().__init__(args, dictionary, embed_tokens)
        width = embed_tokens.embedding_dim
        self.embed_projection = (nn.Linear(width, args.encoder_embed_dim)
                                 if width != args.encoder_embed_dim else None)

    def forward_embedding(self, src_tokens, token_embedding=None):
        x, embed = super().forward_embedding(src_tokens, token_embedding)
        if self.embed_projection is not None:
            x = self.embed_projection(x)
        return x, embed


class HfLMHead(RobertaLMHead):
    """RoBERTa's masked-LM head, its transform ending at the (tied) embedding width."""

    def __init__(self, hidden_dim, embed_dim, output_dim, activation_fn, weight=None):
        super().__init__(embed_dim, output_dim, activation_fn, weight)
        self.dense = nn.Linear(hidden_dim, embed_dim)


class HfRobertaEncoder(RobertaEncoder):
    """A RobertaEncoder honouring --token-embed-dim; usable by any RoBERTa-family model."""

    def build_embedding(self, vocab_size, embedding_dim, padding_idx):
        return nn.Embedding(vocab_size, self.args.token_embed_dim, padding_idx)

    def build_encoder(self, args, dictionary, embed_tokens):
        if args.encoder_normalize_before and embed_tokens.embedding_dim != args.encoder_embed_dim:
            raise AddropError(f"--token-embed-dim {embed_tokens.embedding_dim} differs from "
                              f"--encoder-embed-dim {args.encoder_embed_dim}: supported only with "
                              "post-LN layers (no --encoder-normalize-before)")
        encoder = HfSentenceEncoder(args, dictionary, embed_tokens)
        encoder.apply(init_bert_params)
        return encoder

    def build_lm_head(self, embed_dim, output_dim, activation_fn, weight):
        return HfLMHead(embed_dim, self.args.token_embed_dim, output_dim, activation_fn, weight)


def add_hf_encoder_args(parser) -> None:
    parser.add_argument("--layernorm-eps", type=float, metavar="EPS",
                        help="epsilon of every layer norm (BERT, ELECTRA: 1e-12; RoBERTa: 1e-5)")
    parser.add_argument("--token-embed-dim", type=int, metavar="D",
                        help="width of the token and position embeddings, when narrower than "
                             "--encoder-embed-dim (ELECTRA-small: 128)")


def install_encoder_addrop_attention(sentence_encoder) -> None:
    for index, layer in enumerate(sentence_encoder.layers):
        # a subclass building on this model may have adopted them already
        if type(layer.self_attn) is MultiheadAttention:
            AddropMultiheadAttention.adopt(layer.self_attn, "encoder_self", index)


@register_model("addrop_hf_encoder")
class AddropHfEncoderModel(RobertaModel):
    @staticmethod
    def add_args(parser):
        RobertaModel.add_args(parser)
        add_hf_encoder_args(parser)

    @classmethod
    def build_model(cls, args, task):
        from omegaconf import OmegaConf

        if OmegaConf.is_config(args):
            OmegaConf.set_struct(args, False)
        hf_encoder_architecture(args)
        if not safe_hasattr(args, "max_positions"):
            if not safe_hasattr(args, "tokens_per_sample"):
                args.tokens_per_sample = task.max_positions()
            args.max_positions = args.tokens_per_sample
        encoder = HfRobertaEncoder(args, task.source_dictionary)
        if OmegaConf.is_config(args):
            OmegaConf.set_struct(args, True)
        model = cls(args, encoder)
        set_layer_norm_eps(model, args.layernorm_eps)
        install_encoder_addrop_attention(model.encoder.sentence_encoder)
        return model


@register_model_architecture("addrop_hf_encoder", "addrop_hf_encoder")
def hf_encoder_architecture(args):
    """RoBERTa-base sizes by default; the converter prints the options of the model it wrote."""
    args.layernorm_eps = safe_getattr(args, "layernorm_eps", 1e-5)
    base_architecture(args)
    args.token_embed_dim = safe_getattr(args, "token_embed_dim", args.encoder_embed_dim)
