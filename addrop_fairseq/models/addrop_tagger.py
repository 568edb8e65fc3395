"""Encoder-only taggers whose encoder self-attention can run AD-DROP.

``addrop_tagger``: fairseq's transformer encoder (the ``addrop_transformer`` encoder) plus a
linear tagging head, trained from scratch. ``addrop_roberta_tagger``: fairseq's ``RobertaModel``
encoder plus the same head, to fine-tune a fairseq RoBERTa-format checkpoint
(``encoder.sentence_encoder.*``) given with ``--finetune-from-model``, e.g. one written by
addrop-convert-hf-encoder; its masked-LM head is dropped. It is ``addrop_hf_encoder`` (RoBERTa
plus --layernorm-eps and --token-embed-dim, which converted BERT/ELECTRA weights need) with a
tagging head. Both return ``(logits [B, T, num_labels], extra)``.
"""

import logging

import torch.nn as nn
import torch.nn.functional as F
from fairseq import utils
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture
from fairseq.models.transformer import Embedding, TransformerEncoder
from fairseq.models.transformer.transformer_legacy import base_architecture as transformer_base_architecture
from fairseq.modules.transformer_sentence_encoder import init_bert_params

from ..modules.attention import adopt_attention
from ..errors import AddropError
from .addrop_hf_encoder import AddropHfEncoderModel, hf_encoder_architecture

logger = logging.getLogger(__name__)


class TaggingHead(nn.Module):
    """Dropout and one linear layer per position, as BERT/ELECTRA token classification."""

    def __init__(self, input_dim: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(input_dim, num_labels)

    def forward(self, features):
        return self.out_proj(self.dropout(features))


def task_num_labels(task) -> int:
    num_labels = getattr(task, "num_labels", None)
    if not num_labels:
        raise AddropError(f"a tagger needs --task addrop_tagging (a task with labels), "
                          f"got {type(task).__name__}")
    return num_labels


def log_probs_of(net_output, log_probs: bool):
    logits = net_output[0].float()
    return F.log_softmax(logits, dim=-1) if log_probs else F.softmax(logits, dim=-1)


@register_model("addrop_tagger")
class AddropTaggerModel(BaseFairseqModel):
    def __init__(self, args, encoder: TransformerEncoder, num_labels: int):
        super().__init__()
        self.args = args
        self.encoder = encoder
        self.tagging_head = TaggingHead(args.encoder_embed_dim, num_labels, args.dropout)

    @staticmethod
    def add_args(parser):
        parser.add_argument("--encoder-embed-dim", type=int, metavar="N")
        parser.add_argument("--encoder-ffn-embed-dim", type=int, metavar="N")
        parser.add_argument("--encoder-layers", type=int, metavar="N")
        parser.add_argument("--encoder-attention-heads", type=int, metavar="N")
        parser.add_argument("--encoder-normalize-before", type=utils.eval_bool, metavar="BOOL",
                            help="pre-LayerNorm blocks (the tagger archs default to True)")
        parser.add_argument("--encoder-learned-pos", type=utils.eval_bool, metavar="BOOL",
                            help="learned instead of sinusoidal positions")
        parser.add_argument("--activation-fn", choices=utils.get_available_activation_fns())
        parser.add_argument("--dropout", type=float, metavar="D",
                            help="dropout of the encoder and of the tagging head")
        parser.add_argument("--attention-dropout", type=float, metavar="D")
        parser.add_argument("--activation-dropout", type=float, metavar="D")
        parser.add_argument("--encoder-layerdrop", type=float, metavar="D")
        parser.add_argument("--no-scale-embedding", action="store_true")
        parser.add_argument("--layernorm-embedding", action="store_true")

    @classmethod
    def build_model(cls, args, task):
        tagger_architecture(args)
        args.max_source_positions = task.max_positions()
        dictionary = task.source_dictionary
        embed_tokens = Embedding(len(dictionary), args.encoder_embed_dim, dictionary.pad())
        encoder = TransformerEncoder(args, dictionary, embed_tokens)
        adopt_attention(encoder.layers, "self_attn", "encoder_self")
        return cls(args, encoder, task_num_labels(task))

    def forward(self, src_tokens, src_lengths=None, **unused):
        encoder_out = self.encoder(src_tokens, src_lengths=src_lengths)
        features = encoder_out["encoder_out"][0].transpose(0, 1)  # T x B x C -> B x T x C
        return self.tagging_head(features), {"features": features}

    def get_normalized_probs(self, net_output, log_probs, sample=None):
        return log_probs_of(net_output, log_probs)

    def max_positions(self):
        return self.encoder.max_positions()


@register_model_architecture("addrop_tagger", "addrop_tagger")
def tagger_architecture(args):
    # pre-LN trains from scratch without the long warm-up post-LN needs
    args.encoder_normalize_before = getattr(args, "encoder_normalize_before", True)
    args.activation_fn = getattr(args, "activation_fn", "gelu")
    transformer_base_architecture(args)


@register_model_architecture("addrop_tagger", "addrop_tagger_tiny")
def tagger_tiny(args):
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 128)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 512)
    args.encoder_layers = getattr(args, "encoder_layers", 2)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 4)
    tagger_architecture(args)


@register_model_architecture("addrop_tagger", "addrop_tagger_small")
def tagger_small(args):
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 256)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 1024)
    args.encoder_layers = getattr(args, "encoder_layers", 4)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 4)
    tagger_architecture(args)


@register_model_architecture("addrop_tagger", "addrop_tagger_base")
def tagger_base(args):
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 768)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 3072)
    args.encoder_layers = getattr(args, "encoder_layers", 12)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 12)
    tagger_architecture(args)


@register_model("addrop_roberta_tagger")
class AddropRobertaTaggerModel(AddropHfEncoderModel):
    """RoBERTa-format encoder + tagging head; shapes come from --arch and the model options
    (--encoder-*, --max-positions, --layernorm-eps, --token-embed-dim), which must match the
    checkpoint given to --finetune-from-model. The encoder's self-attention is AD-DROP's already."""

    @classmethod
    def build_model(cls, args, task):
        model = super().build_model(args, task)
        # the masked-LM head is not used for tagging; unused parameters would upset DDP
        model.encoder.lm_head = None
        model.tagging_head = TaggingHead(args.encoder_embed_dim, task_num_labels(task), args.dropout)
        model.tagging_head.apply(init_bert_params)
        return model

    def forward(self, src_tokens, src_lengths=None, **unused):
        features, extra = self.encoder.extract_features(src_tokens)
        return self.tagging_head(features), {"features": features, **extra}

    def get_normalized_probs(self, net_output, log_probs, sample=None):
        return log_probs_of(net_output, log_probs)

    def upgrade_state_dict_named(self, state_dict, name):
        prefix = name + "." if name != "" else ""
        for key in list(state_dict):
            if key.startswith(prefix + "encoder.lm_head."):
                del state_dict[key]
        super().upgrade_state_dict_named(state_dict, name)
        head_key = prefix + "tagging_head.out_proj.weight"
        if head_key not in state_dict:
            logger.info("starting a new tagging head: the checkpoint has none (a pretrained encoder)")
            for key, value in self.tagging_head.state_dict().items():
                state_dict[prefix + "tagging_head." + key] = value
        self._check_shapes(state_dict, prefix)

    def _check_shapes(self, state_dict, prefix) -> None:
        """One clear line instead of fairseq's 'please ensure that the architectures match'."""
        own = {prefix + k: v for k, v in self.state_dict().items()}
        problem = None
        for key, value in own.items():
            if key not in state_dict:
                problem = f"the checkpoint lacks {key}"
            elif tuple(state_dict[key].shape) != tuple(value.shape):
                problem = (f"{key} has shape {tuple(state_dict[key].shape)} in the checkpoint but "
                           f"{tuple(value.shape)} in this model")
                if key.endswith("embed_tokens.weight"):
                    problem += (" (the checkpoint's dictionary, plus <mask>, must be the data's "
                                "input/dict.txt)")
                elif key.startswith(prefix + "tagging_head."):
                    problem += " (a tagger trained on another label set)"
            if problem:
                break
        if problem is None:
            extra = sorted(set(state_dict) - set(own))
            if extra:
                problem = f"the checkpoint has parameters this model lacks, e.g. {extra[0]}"
        if problem:
            message = (f"--arch {getattr(self.args, 'arch', 'addrop_roberta_tagger')} does not match "
                       f"the checkpoint: {problem}; set --encoder-layers/--encoder-embed-dim/"
                       "--encoder-ffn-embed-dim/--encoder-attention-heads/--max-positions to the "
                       "checkpoint's")
            # fairseq re-raises load errors as a generic Exception: log the reason first
            logger.error(message)
            raise AddropError(message)


@register_model_architecture("addrop_roberta_tagger", "addrop_roberta_tagger")
def roberta_tagger_architecture(args):
    """RoBERTa-base (and BERT-base, ELECTRA-base) sizes unless the options say otherwise."""
    hf_encoder_architecture(args)


@register_model_architecture("addrop_roberta_tagger", "addrop_roberta_tagger_base")
def roberta_tagger_base(args):
    hf_encoder_architecture(args)


@register_model_architecture("addrop_roberta_tagger", "addrop_roberta_tagger_large")
def roberta_tagger_large(args):
    args.encoder_layers = getattr(args, "encoder_layers", 24)
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 1024)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 4096)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 16)
    hf_encoder_architecture(args)
