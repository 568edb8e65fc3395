"""Hugging Face BERT, RoBERTa and ELECTRA encoders into fairseq RoBERTa checkpoints.

In: a local Hugging Face directory (config.json, model.safetensors or pytorch_model.bin, the
tokenizer's files). Out: ``model.pt`` (fairseq's RoBERTa layout, ``--arch addrop_hf_encoder``),
``dict.txt``, the tokenizer under ``tokenizer/`` and ``conversion.json``.

What the conversion settles:
- vocabulary: fairseq's ``<s> <pad> </s> <unk>`` take the tokenizer's cls, pad, sep and unk
  tokens, ``<mask>`` its mask token (last, where fairseq's tasks expect it); every other token
  keeps its string in dict.txt, so data tokenized with the recorded tokenizer binarizes with
  ``--srcdict dict.txt``;
- positions: fairseq counts from padding index + 1 = 2. RoBERTa does too; BERT and ELECTRA count
  from 0, so their table moves down two rows;
- token types: fairseq's RoBERTa has none. Type 0's embedding is added to every position row,
  exact for single segments; a BERT sentence pair loses type 1 (conversion.json says so).
Epsilon and ELECTRA's embedding projection are model options (``models/addrop_hf_encoder.py``).
A checkpoint whose epsilon is 1e-5 and whose embeddings are as wide as its layers (RoBERTa)
also loads into fairseq's own ``--arch roberta`` with the same sizes.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch

from ..errors import AddropError
from . import (
    FAIRSEQ_SPECIALS,
    build_fairseq,
    check_field_types,
    fairseq_names,
    load_converted,
    read_config,
    read_weights,
    save_checkpoint,
    shell_join,
    write_dictionary,
)

ENCODER_TYPES = ("bert", "roberta", "electra")
# transformers' hidden_act -> fairseq's --activation-fn
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_accurate", "gelu_pytorch_tanh": "gelu_accurate",
               "relu": "relu", "tanh": "tanh"}
# transformers' names inside encoder.layer.N -> fairseq's inside layers.N (export.py inverts it)
LAYER_PARTS = {
    "attention.self.query": "self_attn.q_proj",
    "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj",
    "attention.output.dense": "self_attn.out_proj",
    "attention.output.LayerNorm": "self_attn_layer_norm",
    "intermediate.dense": "fc1",
    "output.dense": "fc2",
    "output.LayerNorm": "final_layer_norm",
}
# masked-LM heads: (transform dense, transform layer norm, output biases, tied output weight)
LM_HEADS = (
    ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm",
     ("cls.predictions.bias", "cls.predictions.decoder.bias"), "cls.predictions.decoder.weight"),
    ("lm_head.dense", "lm_head.layer_norm", ("lm_head.bias", "lm_head.decoder.bias"),
     "lm_head.decoder.weight"),
    ("generator_predictions.dense", "generator_predictions.LayerNorm",
     ("generator_lm_head.bias",), "generator_lm_head.weight"),
)
# heads that fine-tuning replaces, and buffers that are not weights
_IGNORED = re.compile(r"^(pooler\.|discriminator_predictions\.|cls\.seq_relationship\.|"
                      r"embeddings\.position_ids$|embeddings\.token_type_ids$)")


@dataclass
class EncoderConversion:
    checkpoint: Path
    dictionary: Path
    tokenizer: Path
    model_type: str
    model_arguments: List[str]
    fairseq_index: List[int]  # fairseq_index[hf_id] = the same token's fairseq index
    roberta_compatible: bool
    lm_head: str  # "converted" or "initialized"

    def commands(self, raw: str = "RAW", data: str = "DATA") -> List[str]:
        lines = [
            "# tokenize with the recorded tokenizer and binarize with this dictionary, e.g. GLUE:",
            shell_join(["addrop-prepare-glue", "--hf-tokenizer", self.tokenizer,
                        "--dict", self.dictionary, "...", raw, data]),
            "# then fine-tune from the converted weights; model options must match the checkpoint:",
            shell_join(["fairseq-train", data, "--user-dir", "addrop_fairseq",
                        *self.model_arguments, "--finetune-from-model", self.checkpoint,
                        "--clip-norm", "1.0", "..."]),
        ]
        if self.roberta_compatible:
            lines.append("# (fairseq's own --arch roberta with the same sizes loads it too)")
        return lines


def _normalise(weights: Dict[str, torch.Tensor], model_type: str) -> Dict[str, torch.Tensor]:
    """Drops the task model's body prefix and old TF-style gamma/beta layer-norm names."""
    prefix = f"{model_type}."
    out = {}
    for key, value in weights.items():
        if key.startswith(prefix):
            key = key[len(prefix):]
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
        key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
        out[key] = value
    return out


# a tokenizer's vocabulary lives in one of these; without them transformers 5 quietly builds an
# empty tokenizer from config.json alone
_VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model",
                     "sentencepiece.bpe.model")


def _load_tokenizer(hf_dir: Path):
    if not any((hf_dir / name).is_file() for name in _VOCABULARY_FILES):
        raise AddropError(f"missing tokenizer files in {hf_dir}: it has none of "
                          f"{', '.join(_VOCABULARY_FILES)}")
    try:
        return _transformers().AutoTokenizer.from_pretrained(str(hf_dir), local_files_only=True)
    except Exception as error:  # transformers raises OSError, ValueError, ...: name the directory
        first_line = (str(error).splitlines() or [""])[0][:200]
        raise AddropError(f"missing or unreadable tokenizer files in {hf_dir} "
                          f"({type(error).__name__}: {first_line})") from None


def _transformers():
    try:
        import transformers
    except ImportError:
        raise AddropError("convert_hf_encoder needs the transformers package "
                          "(pip install transformers)") from None
    return transformers


# the config.json fields the conversion reads, and the JSON type each must have
CONFIG_TYPES = {
    "num_hidden_layers": int, "hidden_size": int, "intermediate_size": int,
    "num_attention_heads": int, "hidden_act": str, "hidden_dropout_prob": float,
    "attention_probs_dropout_prob": float, "layer_norm_eps": float, "pad_token_id": int,
    "max_position_embeddings": int, "vocab_size": int, "type_vocab_size": int,
    "position_embedding_type": str, "is_decoder": bool, "add_cross_attention": bool,
    "embedding_size": int,
}


def _full_config(hf_dir: Path) -> dict:
    """config.json completed with the model type's defaults, as transformers reads it."""
    try:
        config = _transformers().AutoConfig.from_pretrained(str(hf_dir), local_files_only=True)
    except Exception as error:  # transformers raises ValueError, TypeError, OSError, ...
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise AddropError(f"{hf_dir / 'config.json'}: transformers cannot read it "
                          f"({message})") from None
    return config.to_dict()


def _special_ids(tokenizer, vocab: Dict[str, int], hf_dir: Path) -> Dict[str, int]:
    ids = {}
    for role, symbol in (("cls_token", "<s>"), ("pad_token", "<pad>"), ("sep_token", "</s>"),
                         ("unk_token", "<unk>"), ("mask_token", "<mask>")):
        token = getattr(tokenizer, role, None)
        if token is None or str(token) not in vocab:
            raise AddropError(f"{hf_dir}: the tokenizer has no {role} in its vocabulary "
                              f"(needed for fairseq's {symbol})")
        ids[symbol] = vocab[str(token)]
    if len(set(ids.values())) != len(ids):
        raise AddropError(f"{hf_dir}: the tokenizer's cls/pad/sep/unk/mask tokens are not five "
                          f"different tokens: {ids}")
    return ids



@dataclass
class EncoderVocabulary:
    """How a Hugging Face tokenizer's ids sit in the fairseq dictionary of a conversion."""
    order: List[int]  # order[fairseq index] = Hugging Face id
    names: List[str]  # dict.txt's symbols after fairseq's four specials, <mask> last
    renamed: Dict[str, str]  # tokens fairseq could not read back -> their placeholders
    special: Dict[str, int]  # fairseq special symbol -> Hugging Face id
    by_id: Dict[int, str]

    @property
    def fairseq_index(self) -> List[int]:  # fairseq_index[hf_id] = the same token's fairseq index
        index = [0] * len(self.order)
        for position, hf_id in enumerate(self.order):
            index[hf_id] = position
        return index


def encoder_vocabulary(tokenizer, hf_dir: Path, rows: int, sizes: str = "",
                       sizes_agree: bool = True) -> EncoderVocabulary:
    """fairseq's ``<s> <pad> </s> <unk>`` take the tokenizer's cls, pad, sep and unk tokens, every
    other token follows in id order, ``<mask>`` last; the same order both ways (conversion and
    export). ``rows``: the embedding table's; ``sizes`` names the other sizes for the message."""
    vocab = tokenizer.get_vocab()
    if len(vocab) != rows or not sizes_agree:
        raise AddropError(
            f"vocabulary and embeddings disagree: the tokenizer in {hf_dir} has {len(vocab)} "
            f"tokens, {sizes or f'the embedding table has {rows} rows'}")
    by_id = {index: token for token, index in vocab.items()}
    gaps = [i for i in range(rows) if i not in by_id]
    if gaps:
        raise AddropError(f"{hf_dir}: the tokenizer's ids must be 0..{rows - 1}; no token has "
                          f"id {gaps[0]}")
    special = _special_ids(tokenizer, vocab, hf_dir)
    rest = [i for i in range(rows) if i not in special.values()]
    order = [special[s] for s in FAIRSEQ_SPECIALS] + rest + [special["<mask>"]]
    names, renamed = fairseq_names([by_id[i] for i in rest], (*FAIRSEQ_SPECIALS, "<mask>"))
    return EncoderVocabulary(order, names + ["<mask>"], renamed, special, by_id)


def position_offset(config: dict) -> int:
    """The position-table row of the first real token: RoBERTa, like fairseq, counts from
    pad + 1; BERT and ELECTRA from 0. fairseq's row 2 + k holds Hugging Face's row offset + k."""
    return config["pad_token_id"] + 1 if config["model_type"] == "roberta" else 0


def _take(weights: Dict[str, torch.Tensor], key: str, path: Path, used: set) -> torch.Tensor:
    if key not in weights:
        raise AddropError(f"{path}: missing {key}; the weights do not match config.json")
    used.add(key)
    return weights[key].float()


def encoder_state_dict(weights: Dict[str, torch.Tensor], config: dict, order: List[int],
                       position_start: int, max_positions: int, path: Path, used: set
                       ) -> Dict[str, torch.Tensor]:
    """HF encoder tensors -> ``encoder.sentence_encoder.*`` (no LM head)."""
    out = "encoder.sentence_encoder."
    words = _take(weights, "embeddings.word_embeddings.weight", path, used)
    positions = _take(weights, "embeddings.position_embeddings.weight", path, used)
    fold = torch.zeros(positions.size(1))
    if "embeddings.token_type_embeddings.weight" in weights:
        fold = _take(weights, "embeddings.token_type_embeddings.weight", path, used)[0]
    # fairseq row p + 2 serves the p-th real token; rows 0 and 1 (padding) are never read as
    # positions of real tokens
    table = torch.zeros(max_positions + 2, positions.size(1))
    table[2:] = positions[position_start:position_start + max_positions] + fold
    converted = {
        out + "embed_tokens.weight": words[order],
        out + "embed_positions.weight": table,
        out + "layernorm_embedding.weight": _take(weights, "embeddings.LayerNorm.weight", path, used),
        out + "layernorm_embedding.bias": _take(weights, "embeddings.LayerNorm.bias", path, used),
    }
    if "embeddings_project.weight" in weights:
        for kind in ("weight", "bias"):
            converted[out + f"embed_projection.{kind}"] = _take(
                weights, f"embeddings_project.{kind}", path, used)
    for layer in range(config["num_hidden_layers"]):
        for hf_part, fairseq_part in LAYER_PARTS.items():
            for kind in ("weight", "bias"):
                converted[f"{out}layers.{layer}.{fairseq_part}.{kind}"] = _take(
                    weights, f"encoder.layer.{layer}.{hf_part}.{kind}", path, used)
    return converted


def lm_head_state_dict(weights, words: torch.Tensor, order: List[int], path: Path, used: set
                       ) -> Optional[Dict[str, torch.Tensor]]:
    for dense, norm, biases, decoder in LM_HEADS:
        if f"{dense}.weight" not in weights:
            continue
        if decoder in weights and not torch.equal(weights[decoder].float(), words):
            raise AddropError(f"{path}: {decoder} is not tied to the word embeddings; untied "
                              "masked-LM heads are not supported")
        used.add(decoder)
        bias = next((b for b in biases if b in weights), None)
        if bias is None:
            raise AddropError(f"{path}: the masked-LM head has no output bias ({' / '.join(biases)})")
        used.update(biases)
        head = {"encoder.lm_head.dense.weight": _take(weights, f"{dense}.weight", path, used),
                "encoder.lm_head.dense.bias": _take(weights, f"{dense}.bias", path, used),
                "encoder.lm_head.layer_norm.weight": _take(weights, f"{norm}.weight", path, used),
                "encoder.lm_head.layer_norm.bias": _take(weights, f"{norm}.bias", path, used),
                "encoder.lm_head.bias": weights[bias].float()[order]}
        return head
    return None


def model_arguments(config: dict, embed_dim: int, max_positions: int) -> List[str]:
    activation = config.get("hidden_act", "gelu")
    if activation not in ACTIVATIONS:
        raise AddropError(f"config.json: hidden_act {activation!r} is not supported (expected one "
                          f"of {sorted(ACTIVATIONS)})")
    args = ["--arch", "addrop_hf_encoder",
            "--encoder-layers", config["num_hidden_layers"],
            "--encoder-embed-dim", config["hidden_size"],
            "--encoder-ffn-embed-dim", config["intermediate_size"],
            "--encoder-attention-heads", config["num_attention_heads"],
            "--max-positions", max_positions,
            "--activation-fn", ACTIVATIONS[activation],
            "--dropout", config.get("hidden_dropout_prob", 0.1),
            "--attention-dropout", config.get("attention_probs_dropout_prob", 0.1),
            "--activation-dropout", 0.0,
            "--layernorm-eps", config.get("layer_norm_eps", 1e-12)]
    if embed_dim != config["hidden_size"]:
        args += ["--token-embed-dim", embed_dim]
    return [str(a) for a in args]


def _check_config(config: dict, path: Path) -> None:
    kind = config.get("position_embedding_type", "absolute")
    if kind != "absolute":
        raise AddropError(f"{path}: position_embedding_type {kind!r} is not supported "
                          "(fairseq's RoBERTa has absolute positions only)")
    if config.get("is_decoder") or config.get("add_cross_attention"):
        raise AddropError(f"{path}: a decoder (is_decoder/add_cross_attention) is not an encoder")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise AddropError(f"{path}: hidden_size {config['hidden_size']} is not divisible by "
                          f"num_attention_heads {config['num_attention_heads']}")


def convert_hf_encoder(hf_dir, out_dir) -> EncoderConversion:
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    raw_config = read_config(hf_dir, ENCODER_TYPES, "convert_hf_encoder")
    check_field_types(raw_config, CONFIG_TYPES, hf_dir / "config.json",
                      optional=("pad_token_id", "position_embedding_type"))
    config = _full_config(hf_dir)
    model_type = config["model_type"]
    _check_config(config, hf_dir / "config.json")
    tokenizer = _load_tokenizer(hf_dir)
    weights, weights_path = read_weights(hf_dir)
    weights = _normalise(weights, model_type)
    if "embeddings.word_embeddings.weight" not in weights:
        raise AddropError(f"{weights_path}: no embeddings.word_embeddings.weight; these are not "
                          f"the weights of a {model_type} encoder")
    rows, embed_dim = weights["embeddings.word_embeddings.weight"].shape
    vocabulary = encoder_vocabulary(tokenizer, hf_dir, rows,
                                    f"config.json says vocab_size {config.get('vocab_size')}, the "
                                    f"embedding table in {weights_path} has {rows} rows",
                                    config.get("vocab_size", rows) == rows)
    order, names, renamed = vocabulary.order, vocabulary.names, vocabulary.renamed
    special, by_id, fairseq_index = vocabulary.special, vocabulary.by_id, vocabulary.fairseq_index

    # RoBERTa, like fairseq, numbers real tokens from pad + 1; BERT and ELECTRA from 0
    table_rows = weights["embeddings.position_embeddings.weight"].size(0)
    position_start = position_offset(config)
    max_positions = table_rows - position_start
    if max_positions < 1:
        raise AddropError(f"{hf_dir / 'config.json'}: {table_rows} position rows leave no "
                          f"positions after the offset {position_start}")
    used: set = set()
    converted = encoder_state_dict(weights, config, order, position_start, max_positions,
                                   weights_path, used)
    words = weights["embeddings.word_embeddings.weight"].float()
    head = lm_head_state_dict(weights, words, order, weights_path, used)
    unexpected = sorted(k for k in set(weights) - used if not _IGNORED.match(k))
    if unexpected:
        raise AddropError(f"{weights_path}: tensors a {model_type} encoder does not have: "
                          f"{', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")

    out_dir.mkdir(parents=True, exist_ok=True)
    dictionary = out_dir / "dict.txt"
    write_dictionary(dictionary, names)
    arguments = model_arguments(config, embed_dim, max_positions)
    cfg, task, model = build_fairseq([str(out_dir.resolve()), "--task", "masked_lm",
                                      "--criterion", "masked_lm", *arguments,
                                      "--tokens-per-sample", str(max_positions)])
    if len(task.source_dictionary) != rows:
        raise AssertionError(f"fairseq dictionary has {len(task.source_dictionary)} symbols, "
                             f"expected {rows}")
    own = model.state_dict()
    if head is None:  # ELECTRA discriminators, sentence encoders: keep fairseq's initial head
        head = {k: v for k, v in own.items() if k.startswith("encoder.lm_head.")}
    head["encoder.lm_head.weight"] = converted["encoder.sentence_encoder.embed_tokens.weight"]
    converted.update(head)
    load_converted(model, converted)

    tokenizer_dir = out_dir / "tokenizer"
    tokenizer.save_pretrained(str(tokenizer_dir))
    roberta_compatible = (float(config.get("layer_norm_eps", 1e-12)) == 1e-5
                          and embed_dim == config["hidden_size"])
    conversion = EncoderConversion(
        checkpoint=out_dir / "model.pt", dictionary=dictionary, tokenizer=tokenizer_dir,
        model_type=model_type, model_arguments=arguments, fairseq_index=fairseq_index,
        roberta_compatible=roberta_compatible,
        lm_head="converted" if any(f"{d}.weight" in weights for d, *_ in LM_HEADS)
        else "initialized")
    segments = int(config.get("type_vocab_size", 0) or 0)
    record = {
        "converted_from": str(hf_dir.resolve()), "model_type": model_type,
        "tokenizer": "tokenizer", "dictionary": "dict.txt",
        "special_tokens": {symbol: by_id[i] for symbol, i in special.items()},
        "renamed_tokens": renamed, "model_arguments": arguments,
        "roberta_compatible": roberta_compatible, "lm_head": conversion.lm_head,
        "token_types": ("type 0 folded into the positions; sentence pairs get no type-1 "
                        "embedding" if segments > 1 else "none beyond type 0 (folded in)"),
    }
    save_checkpoint(conversion.checkpoint, cfg, model, "MaskedLmLoss", record)
    record["commands"] = conversion.commands()
    with open(out_dir / "conversion.json", "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, ensure_ascii=False)
    return conversion
