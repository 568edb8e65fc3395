"""fairseq checkpoints back into Hugging Face directories: the inverse of ``marian.py`` and
``hf_encoder.py``, with their name tables and vocabulary orders.

AD-DROP adds no parameters, so an export is the fine-tuned weights under the other side's names:

- ``addrop_marian`` -> ``MarianMTModel``, with MarianTokenizer's files and generation_config.json;
- ``addrop_roberta_tagger`` on a converted BERT, RoBERTa or ELECTRA -> ``*ForTokenClassification``
  with the task's labels;
- ``addrop_sentence_prediction`` / ``sentence_prediction`` models (``addrop_hf_encoder`` or
  fairseq's ``roberta_*``) -> ``*ForSequenceClassification`` with the GLUE task's labels
  (``num_labels=1`` for a regression such as STS-B);
- a converted, not yet fine-tuned ``addrop_hf_encoder`` (task ``masked_lm``) -> ``*ForMaskedLM``
  (BERT, RoBERTa), which closes the round trip HF -> fairseq -> HF;
- a transformer trained here from scratch (``addrop_transformer`` / ``transformer`` with one
  shared table, post-LN, sinusoidal positions: fairseq's defaults) ->
  ``FSMTForConditionalGeneration``, transformers' port of fairseq's own transformer (its
  positions, its layout), with a fast tokenizer built from the run's sentencepiece model in the
  fairseq dictionary's ids (``fairseq_sentencepiece_tokenizer``).

For the converted models, the tokenizer and what fairseq's checkpoint cannot say (Marian's
vocabulary order, token-type rows, generation settings) come from the *reference*: the Hugging
Face directory the model was converted from, given with ``--reference`` or found through the
checkpoint (the conversion's record in a converted ``model.pt``, or ``conversion.json`` beside
the checkpoint that ``--restore-file`` named). Every fairseq tensor lands somewhere or stops the
export with one line naming it; the few left out on purpose (the unused masked-LM head of a
classifier) are listed in the result. Token types: the conversion folded type 0 into every
position row, so the export unfolds it against the reference (bit-exact where a row was not
fine-tuned) and gives every type row type 0's embedding, which is what the fairseq model
computed for every token.

Not exportable, and why (``NOT_EXPORTABLE`` and the checks of ``export_transformer``): the
from-scratch ``addrop_tagger``, and transformers whose options leave FSMT's layout (pre-LN,
learned positions, separate tables, ...).
"""
from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from ..errors import AddropError
from ..data.output_dir import check_dest, staged_dest
from . import FAIRSEQ_SPECIALS, read_json_object, read_weights
from .hf_encoder import (
    ACTIVATIONS,
    LAYER_PARTS,
    LM_HEADS,
    _full_config,
    _load_tokenizer,
    _normalise,
    encoder_vocabulary,
    position_offset,
)
from .marian import (
    DECODER_PARTS,
    ENCODER_PARTS,
    marian_tokenizer_files,
    marian_vocabulary,
    model_arguments as marian_model_arguments,
    read_marian_config,
    read_vocabulary,
)

TOOL = "addrop-export-hf"
NOT_EXPORTABLE = {
    "addrop_tagger": (
        "the from-scratch tagger is fairseq's pre-LN transformer encoder with sinusoidal "
        "positions; Hugging Face's token classifiers (BERT, RoBERTa, ELECTRA) are post-LN with "
        "learned positions. Taggers on a converted encoder (--arch addrop_roberta_tagger) export"),
}
# fairseq activation -> transformers' hidden_act (the inverse of hf_encoder.ACTIVATIONS)
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_accurate": "gelu_new", "relu": "relu", "tanh": "tanh"}
# sentence-classification heads: fairseq's dense -> activation -> out_proj, by model type
CLASSIFIER_HEADS = {
    # BERT's pooler is the head's dense + tanh; its classifier the out_proj
    "bert": ("tanh", "bert.pooler.dense", "classifier"),
    "roberta": ("tanh", "classifier.dense", "classifier.out_proj"),
    "electra": ("gelu", "classifier.dense", "classifier.out_proj"),
}
HF_CLASSES = {
    ("bert", "tokens"): "BertForTokenClassification",
    ("roberta", "tokens"): "RobertaForTokenClassification",
    ("electra", "tokens"): "ElectraForTokenClassification",
    ("bert", "sequence"): "BertForSequenceClassification",
    ("roberta", "sequence"): "RobertaForSequenceClassification",
    ("electra", "sequence"): "ElectraForSequenceClassification",
    ("bert", "masked_lm"): "BertForMaskedLM",
    ("roberta", "masked_lm"): "RobertaForMaskedLM",
}
# Hugging Face tensors that are not weights of the checkpoint: buffers, and Marian's positions,
# which transformers computes from its formula and never saves
_COMPUTED = re.compile(r"(^|\.)(position_ids|token_type_ids|embed_positions\.weight)$")
# fairseq bookkeeping, not weights
_BOOKKEEPING = re.compile(r"(\.version|_float_tensor)$")


@dataclass
class Export:
    out_dir: Path
    hf_class: str
    reference: Path
    labels: Optional[Dict[int, str]] = None
    left_out: List[str] = field(default_factory=list)  # fairseq tensors deliberately not exported
    notes: List[str] = field(default_factory=list)

    def summary(self) -> List[str]:
        lines = [f"{self.out_dir}: {self.hf_class} (tokenizer and settings from {self.reference})"]
        if self.labels:
            lines.append("labels: " + ", ".join(f"{i}={name}" for i, name in self.labels.items()))
        lines += [f"left out: {item}" for item in self.left_out] + self.notes
        return lines


# --- reading the checkpoint ----------------------------------------------------------------------

def read_checkpoint(path: Path) -> Tuple[dict, dict, Dict[str, torch.Tensor]]:
    """(the whole state, its configuration as plain containers, the model's tensors)."""
    from fairseq import checkpoint_utils
    from omegaconf import OmegaConf

    path = Path(path)
    if not path.is_file():
        raise AddropError(f"CHECKPOINT {path}: no such file")
    try:
        state = checkpoint_utils.load_checkpoint_to_cpu(str(path))
    except Exception as error:  # pickle, zip and fairseq's upgrade errors alike
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise AddropError(f"CHECKPOINT {path}: not a readable fairseq checkpoint "
                          f"({type(error).__name__}: {first})") from None
    cfg = state.get("cfg")
    if cfg is None or not isinstance(state.get("model"), dict):
        raise AddropError(f"CHECKPOINT {path}: no model configuration or weights in it")
    if OmegaConf.is_config(cfg):
        try:
            cfg = OmegaConf.to_container(cfg, resolve=True)
        except Exception:  # an interpolation naming a group the checkpoint lacks
            cfg = OmegaConf.to_container(cfg, resolve=False)
    cfg = {key: (vars(value) if isinstance(value, argparse.Namespace) else value)
           for key, value in cfg.items()}  # argparse models keep their options as a Namespace
    return state, cfg, state["model"]


def architecture(cfg: dict) -> str:
    model = cfg.get("model") or {}
    return str(model.get("_name") or model.get("arch") or "")


def recorded_reference(state: dict, cfg: dict) -> Tuple[Optional[Path], str]:
    """The Hugging Face directory the checkpoint's model came from, and where that was read."""
    conversion = (state.get("extra_state") or {}).get("conversion") or {}
    if conversion.get("converted_from"):
        return Path(conversion["converted_from"]), "the checkpoint's conversion record"
    checkpoint = cfg.get("checkpoint") or {}
    # the pretrained start: --finetune-from-model (the documented form), or the older
    # --restore-file MODEL --reset-*
    for option, start in (("--finetune-from-model", checkpoint.get("finetune_from_model")),
                          ("--restore-file", checkpoint.get("restore_file"))):
        if not start or start == "checkpoint_last.pt":
            continue
        record = Path(start).parent / "conversion.json"
        if record.is_file():
            converted_from = read_json_object(record, "conversion settings").get("converted_from")
            if converted_from:
                return Path(converted_from), str(record)
        return None, f"{option} {start} has no conversion.json beside it"
    return None, "the checkpoint records no conversion and no pretrained start"


def find_reference(reference, state: dict, cfg: dict) -> Path:
    if reference is not None:
        reference = Path(reference)
        if not reference.is_dir():
            raise AddropError(f"--reference {reference}: not a directory")
        return reference
    found, where = recorded_reference(state, cfg)
    if found is None:
        raise AddropError(f"no reference tokenizer: {where}; pass --reference HF_DIR (the Hugging "
                          "Face directory the model was converted from)")
    if not found.is_dir():
        raise AddropError(f"no reference tokenizer: {found} (recorded in {where}) does not exist; "
                          "pass --reference HF_DIR")
    return found


def data_file(cfg: dict, data: Optional[Path], *parts: str, required: bool = True
              ) -> Optional[Path]:
    """A file of the training data (dictionaries), under --data or the checkpoint's task.data."""
    recorded = str((cfg.get("task") or {}).get("data") or "").split(os.pathsep)[0]
    root = Path(data) if data is not None else Path(recorded)
    path = root.joinpath(*parts)
    if path.is_file():
        return path
    if required:
        source = "--data" if data is not None else "the checkpoint's task.data"
        raise AddropError(f"missing {'/'.join(parts)}: {path} does not exist ({source}); pass "
                          "--data DIR, the data directory the model was trained on")
    return None


def language_pair(cfg: dict, data: Optional[Path]) -> Tuple[Optional[str], Optional[str]]:
    """The translation task's languages; fairseq-train reads them off the data when not given."""
    from fairseq.data.data_utils import infer_language_pair

    task_cfg = cfg.get("task") or {}
    source, target = task_cfg.get("source_lang"), task_cfg.get("target_lang")
    if source and target:
        return source, target
    root = str(data) if data is not None else str(task_cfg.get("data") or "")
    return infer_language_pair(root.split(os.pathsep)[0]) if root else (None, None)


def dictionary_symbols(path: Path, add_mask: bool) -> List[str]:
    from fairseq.data import Dictionary

    dictionary = Dictionary.load(str(path))
    if add_mask:  # as the tasks do when they load it
        dictionary.add_symbol("<mask>")
    return dictionary.symbols[dictionary.nspecial:]


class Tensors:
    """The checkpoint's tensors, taken once each: what is never taken is reported, not dropped."""

    def __init__(self, state: Dict[str, torch.Tensor], checkpoint: Path):
        self.state, self.checkpoint, self.used = state, checkpoint, set()

    def take(self, key: str) -> torch.Tensor:
        if key not in self.state:
            raise AddropError(f"CHECKPOINT {self.checkpoint}: missing {key}; the checkpoint does "
                              "not match its own --arch options")
        self.used.add(key)
        return self.state[key].float()

    def leave_out(self, prefix: str) -> List[str]:
        keys = [k for k in self.state if k.startswith(prefix)]
        self.used.update(keys)
        return keys

    def check_all_taken(self, target: str) -> None:
        rest = sorted(k for k in self.state if k not in self.used and not _BOOKKEEPING.search(k))
        if rest:
            raise AddropError(f"CHECKPOINT {self.checkpoint}: {rest[0]} has no place in {target}"
                              f"{f' (nor {len(rest) - 1} more)' if len(rest) > 1 else ''}; "
                              "nothing was written")


def check_zero(tensor: torch.Tensor, what: str, why: str) -> None:
    if tensor.abs().max().item() != 0:
        raise AddropError(f"{what} is not zero, and {why}; nothing was written")


# --- building and writing the Hugging Face model -------------------------------------------------

def _transformers():
    try:
        import transformers
    except ImportError:
        raise AddropError(f"{TOOL} needs the transformers package (pip install transformers)") \
            from None
    return transformers


def fill_model(model: torch.nn.Module, produced: Dict[str, Tuple[torch.Tensor, str]],
               class_name: str, aliases=()) -> None:
    """Loads ``produced`` (HF name -> (tensor, fairseq source)) into ``model``, every weight of
    it; a tensor with no place or another shape stops with one line naming it. ``aliases``:
    names of tied tensors that some transformers versions list and others do not."""
    expected = model.state_dict()
    produced = {k: v for k, v in produced.items() if k in expected or k not in set(aliases)}
    for key, (value, source) in produced.items():
        if key not in expected:
            raise AddropError(f"{source} has no place in {class_name} (as {key}); nothing was "
                              "written")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise AddropError(f"{source}: shape {tuple(value.shape)}, but {class_name}'s {key} is "
                              f"{tuple(expected[key].shape)}; nothing was written")
    missing = sorted(k for k in expected if k not in produced and not _COMPUTED.search(k))
    if missing:
        raise AddropError(f"{class_name}'s {missing[0]} has no source in the checkpoint; nothing "
                          "was written")
    full = {k: (produced[k][0].to(expected[k].dtype) if k in produced else expected[k])
            for k in expected}
    model.load_state_dict(full, strict=True)


def write_directory(out_dir: Path, force: bool, model, tokenizer, class_name: str) -> None:
    """The directory, whole or not at all, checked by loading it back with ``from_pretrained``."""
    transformers = _transformers()
    with staged_dest(out_dir, force, "OUT_DIR") as staging:
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        reloaded = getattr(transformers, class_name).from_pretrained(str(staging))
        ours = model.state_dict()
        for key, value in reloaded.state_dict().items():
            if not torch.equal(value, ours[key]):
                raise AssertionError(f"{key} does not read back from {staging} as written")
        transformers.AutoTokenizer.from_pretrained(str(staging))


# --- encoders: BERT, RoBERTa, ELECTRA ------------------------------------------------------------

@dataclass
class EncoderOptions:
    layers: int
    width: int
    ffn: int
    heads: int
    positions: int
    activation: str
    layer_norm_eps: float
    embed_width: int
    dropout: float
    attention_dropout: float

    @classmethod
    def of(cls, model_cfg: dict, checkpoint: Path) -> "EncoderOptions":
        if model_cfg.get("encoder_normalize_before"):
            raise AddropError(f"CHECKPOINT {checkpoint}: --encoder-normalize-before (pre-LN) "
                              "has no Hugging Face BERT/RoBERTa/ELECTRA counterpart (they are "
                              "post-LN)")
        width = int(model_cfg["encoder_embed_dim"])
        return cls(layers=int(model_cfg["encoder_layers"]), width=width,
                   ffn=int(model_cfg["encoder_ffn_embed_dim"]),
                   heads=int(model_cfg["encoder_attention_heads"]),
                   positions=int(model_cfg.get("max_positions") or 512),
                   activation=str(model_cfg.get("activation_fn") or "gelu"),
                   layer_norm_eps=float(model_cfg.get("layernorm_eps") or 1e-5),
                   embed_width=int(model_cfg.get("token_embed_dim") or width),
                   dropout=float(model_cfg.get("dropout", 0.1)),
                   attention_dropout=float(model_cfg.get("attention_dropout", 0.1)))


def encoder_config(reference: Path, options: EncoderOptions, rows: int):
    """The reference's config with the checkpoint's sizes; a disagreement is a wrong --reference."""
    transformers = _transformers()
    config = _full_config(reference)
    model_type = config["model_type"]
    offset = position_offset(config)
    hidden_act = config.get("hidden_act", "gelu")
    if ACTIVATIONS.get(hidden_act) != options.activation:
        if options.activation not in HF_ACTIVATIONS:
            raise AddropError(f"--activation-fn {options.activation} has no transformers "
                              f"counterpart (expected one of {sorted(HF_ACTIVATIONS)})")
        hidden_act = HF_ACTIVATIONS[options.activation]
    sizes = {"num_hidden_layers": options.layers, "hidden_size": options.width,
             "intermediate_size": options.ffn, "num_attention_heads": options.heads,
             "vocab_size": rows, "max_position_embeddings": options.positions + offset}
    if config["model_type"] == "electra":
        sizes["embedding_size"] = options.embed_width
    elif options.embed_width != options.width:
        raise AddropError(f"--token-embed-dim {options.embed_width}: only ELECTRA has embeddings "
                          f"narrower than its layers, and --reference {reference} is "
                          f"{config['model_type']}")
    for name, value in sizes.items():
        if name in config and config[name] != value:
            raise AddropError(f"--reference {reference}: config.json has {name} {config[name]}, "
                              f"the checkpoint {value}; give the Hugging Face directory the model "
                              "was converted from")
    config.update(sizes, hidden_act=hidden_act, layer_norm_eps=options.layer_norm_eps,
                  hidden_dropout_prob=options.dropout,
                  attention_probs_dropout_prob=options.attention_dropout)
    for key in ("model_type", "architectures", "transformers_version", "_name_or_path",
                "id2label", "label2id", "num_labels"):
        config.pop(key, None)
    return getattr(transformers, f"{model_type.capitalize()}Config")(**config), offset


def vocabulary_order(tokenizer, reference: Path, rows: int, dictionary: Optional[Path]
                     ) -> Tuple[List[int], List[str]]:
    """order[fairseq index] = Hugging Face id, from the reference tokenizer as the conversion
    made it, checked against the data's dictionary when that is at hand."""
    notes = []
    vocabulary = encoder_vocabulary(tokenizer, reference, rows,
                                    f"the checkpoint's embedding table has {rows} rows")
    if dictionary is not None:
        symbols = dictionary_symbols(dictionary, add_mask=True)
        plain = [s for s in symbols if s != "<mask>" and not s.startswith("madeupword")]
        if plain and all(s.isdigit() for s in plain):
            # fairseq's own GPT-2 dictionaries: Hugging Face's RoBERTa vocabulary is in their order
            notes.append(f"{dictionary} holds GPT-2 ids, not token strings: rows taken in the "
                         "reference tokenizer's order, as Hugging Face's RoBERTa conversion did")
        elif symbols != vocabulary.names:
            at = next((i for i, (a, b) in enumerate(zip(symbols, vocabulary.names)) if a != b),
                      min(len(symbols), len(vocabulary.names)))
            ours = symbols[at] if at < len(symbols) else "(end)"
            theirs = vocabulary.names[at] if at < len(vocabulary.names) else "(end)"
            raise AddropError(f"{dictionary}: symbol {at + len(FAIRSEQ_SPECIALS)} is {ours!r} but "
                              f"the reference tokenizer in {reference} puts {theirs!r} there; "
                              "--reference must be the tokenizer the data was prepared with")
    return vocabulary.order, notes


def permute_rows(table: torch.Tensor, order: List[int], what: str) -> torch.Tensor:
    """fairseq row p -> Hugging Face row order[p]."""
    if table.size(0) != len(order):
        raise AddropError(f"{what} has {table.size(0)} rows, the reference vocabulary "
                          f"{len(order)}; nothing was written")
    out = torch.empty_like(table)
    out[torch.tensor(order)] = table
    return out


def encoder_tensors(tensors: Tensors, config, offset: int, order: List[int],
                    reference_weights: Optional[Dict[str, torch.Tensor]], body: str
                    ) -> Dict[str, Tuple[torch.Tensor, str]]:
    """``encoder.sentence_encoder.*`` -> the Hugging Face body (``body`` + ``embeddings...``)."""
    source = "encoder.sentence_encoder."
    out: Dict[str, Tuple[torch.Tensor, str]] = {}

    def put(hf_key: str, fairseq_key: str, value=None):
        out[body + hf_key] = (tensors.take(source + fairseq_key) if value is None else value,
                              source + fairseq_key)

    words = tensors.take(source + "embed_tokens.weight")
    put("embeddings.word_embeddings.weight", "embed_tokens.weight",
        permute_rows(words, order, source + "embed_tokens.weight"))
    key = source + "embed_positions.weight"
    table = tensors.take(key)
    reference_weights = reference_weights or {}
    types = int(getattr(config, "type_vocab_size", 0) or 0)
    hf_rows = config.max_position_embeddings
    ref_positions = reference_weights.get("embeddings.position_embeddings.weight")
    ref_types = reference_weights.get("embeddings.token_type_embeddings.weight")
    if ref_positions is not None and tuple(ref_positions.shape) != (hf_rows, table.size(1)):
        ref_positions = None
    type0 = (ref_types[0].float() if ref_types is not None and types
             and ref_types.size(-1) == table.size(1) else torch.zeros(table.size(1)))
    real = table[2:]
    if real.size(0) != hf_rows - offset:
        raise AddropError(f"{key}: {table.size(0)} rows hold {real.size(0)} positions, "
                          f"config max_position_embeddings {hf_rows} less offset {offset} is "
                          f"{hf_rows - offset}; nothing was written")
    # the conversion added type 0 to every row; where a row is unchanged since, the reference's
    # own row comes back bit for bit
    positions = real - type0
    if ref_positions is not None:
        original = ref_positions[offset:].float()
        positions = torch.where(original + type0 == real, original, positions)
    if offset == 2:  # RoBERTa: fairseq's rows 0-1 are Hugging Face's (never read for real tokens)
        unused = table[:2]
        if ref_positions is not None and not unused.any():
            unused = ref_positions[:2].float()
        head = unused
    else:
        check_zero(table[:2], f"rows 0-1 of {key}", "they have no place in a table that counts "
                   "from 0")
        head = (ref_positions[:offset].float() if ref_positions is not None
                else torch.zeros(offset, table.size(1)))
    put("embeddings.position_embeddings.weight", "embed_positions.weight",
        torch.cat([head, positions]))
    if types:
        out[body + "embeddings.token_type_embeddings.weight"] = (
            type0.expand(types, -1).clone(), key + " (type 0, folded in by the conversion)")
    for kind in ("weight", "bias"):
        put(f"embeddings.LayerNorm.{kind}", f"layernorm_embedding.{kind}")
        if source + f"embed_projection.{kind}" in tensors.state:
            put(f"embeddings_project.{kind}", f"embed_projection.{kind}")
    for layer in range(config.num_hidden_layers):
        for hf_part, fairseq_part in LAYER_PARTS.items():
            for kind in ("weight", "bias"):
                put(f"encoder.layer.{layer}.{hf_part}.{kind}",
                    f"layers.{layer}.{fairseq_part}.{kind}")
    return out


def read_reference_weights(reference: Path, model_type: str):
    try:
        weights, _ = read_weights(reference)
    except AddropError:  # a tokenizer-and-config reference: no unfolding, types stay zero
        return None
    return _normalise(weights, model_type)


def export_encoder(state, cfg, tensors: Tensors, reference: Path, head: str,
                   data: Optional[Path], out_dir: Path, force: bool) -> Export:
    """Taggers, sentence classifiers and masked-LM encoders (``head``: tokens, sequence,
    masked_lm)."""
    checkpoint = tensors.checkpoint
    model_cfg, task_cfg = cfg["model"], cfg.get("task") or {}
    options = EncoderOptions.of(model_cfg, checkpoint)
    tokenizer = _load_tokenizer(reference)
    rows = tensors.state["encoder.sentence_encoder.embed_tokens.weight"].size(0)
    dictionary_path = {"tokens": ("input", "dict.txt"), "sequence": ("input0", "dict.txt"),
                       "masked_lm": ("dict.txt",)}[head]
    dictionary = data_file(cfg, data, *dictionary_path, required=False)
    order, notes = vocabulary_order(tokenizer, reference, rows, dictionary)
    model_type = _full_config(reference)["model_type"]
    result = Export(out_dir, "", reference, notes=notes)
    labels: Optional[List[str]] = None

    if head == "sequence":
        heads = sorted({k.split(".")[1] for k in tensors.state
                        if k.startswith("classification_heads.")})
        if len(heads) != 1:
            raise AddropError(f"CHECKPOINT {checkpoint}: {len(heads)} classification heads "
                              f"({', '.join(heads) or 'none'}); one can be exported")
        name = heads[0]
        activation = str(model_cfg.get("pooler_activation_fn") or "tanh")
        wanted = CLASSIFIER_HEADS[model_type][0]
        if activation != wanted:
            raise AddropError(f"CHECKPOINT {checkpoint}: --pooler-activation-fn {activation}, but "
                              f"{HF_CLASSES[(model_type, 'sequence')]} applies {wanted} (fine-tune "
                              f"with --pooler-activation-fn {wanted})")
        regression = bool(task_cfg.get("regression_target"))
        out_rows = tensors.state[f"classification_heads.{name}.out_proj.weight"].size(0)
        if regression:
            labels = None
            if out_rows != 1:
                raise AddropError(f"CHECKPOINT {checkpoint}: a regression head with {out_rows} "
                                  "outputs")
        else:
            path = data_file(cfg, data, "label", "dict.txt")
            names = [s for s in dictionary_symbols(path, add_mask=False) if s != "<mask>"]
            if len(names) != out_rows:
                raise AddropError(f"{path}: {len(names)} labels, the classification head "
                                  f"{out_rows} outputs")
            labels = names
    elif head == "tokens":
        path = data_file(cfg, data, "label", "dict.txt")
        labels = dictionary_symbols(path, add_mask=False)
        out_rows = tensors.state["tagging_head.out_proj.weight"].size(0)
        if len(labels) != out_rows:
            raise AddropError(f"{path}: {len(labels)} labels, the tagging head {out_rows} outputs")
    elif model_type == "electra":
        raise AddropError("an ELECTRA discriminator has no masked-LM head to export (the "
                          "conversion initialized one); export a fine-tuned tagger or classifier")

    class_name = HF_CLASSES[(model_type, head)]
    transformers = _transformers()
    config, offset = encoder_config(reference, options, rows)
    config.architectures = [class_name]
    if labels is not None:
        config.id2label = dict(enumerate(labels))
        config.label2id = {name: i for i, name in enumerate(labels)}
        result.labels = dict(enumerate(labels))
    if head == "sequence":
        config.num_labels = out_rows
        config.problem_type = "regression" if out_rows == 1 else "single_label_classification"

    body = f"{model_type}."
    produced = encoder_tensors(tensors, config, offset, order,
                               read_reference_weights(reference, model_type), body)
    if head == "tokens":
        for kind in ("weight", "bias"):
            produced[f"classifier.{kind}"] = (tensors.take(f"tagging_head.out_proj.{kind}"),
                                              f"tagging_head.out_proj.{kind}")
    elif head == "sequence":
        _, dense, out_proj = CLASSIFIER_HEADS[model_type]
        for part, hf in (("dense", dense), ("out_proj", out_proj)):
            for kind in ("weight", "bias"):
                key = f"classification_heads.{name}.{part}.{kind}"
                produced[f"{hf}.{kind}"] = (tensors.take(key), key)
        unused = tensors.leave_out("encoder.lm_head.")
        if unused:
            result.left_out.append("encoder.lm_head.* (the masked-LM head, which sentence "
                                   "classification never runs and does not train)")
    else:
        dense, norm, biases, decoder = LM_HEADS[["bert", "roberta"].index(model_type)]
        lm = "encoder.lm_head."
        if not torch.equal(tensors.take(lm + "weight"), tensors.state[
                "encoder.sentence_encoder.embed_tokens.weight"].float()):
            raise AddropError(f"{lm}weight is not tied to the word embeddings; {class_name} "
                              "ties them")
        for hf, fs in ((dense, "dense"), (norm, "layer_norm")):
            for kind in ("weight", "bias"):
                produced[f"{hf}.{kind}"] = (tensors.take(f"{lm}{fs}.{kind}"), f"{lm}{fs}.{kind}")
        bias = permute_rows(tensors.take(lm + "bias"), order, lm + "bias")
        for hf in biases:
            produced[hf] = (bias, lm + "bias")
        produced[decoder] = (produced[body + "embeddings.word_embeddings.weight"][0],
                             lm + "weight")
        aliases = (*biases, decoder)
    tensors.check_all_taken(class_name)

    model = getattr(transformers, class_name)(config).eval()
    fill_model(model, produced, class_name, aliases if head == "masked_lm" else ())
    write_directory(out_dir, force, model, tokenizer, class_name)
    result.hf_class = class_name
    return result


# --- Marian --------------------------------------------------------------------------------------

# the --options that fix Marian's architecture: the checkpoint's must equal the reference's
_MARIAN_SHAPE_OPTIONS = ("--encoder-layers", "--decoder-layers", "--encoder-embed-dim",
                         "--encoder-ffn-embed-dim", "--decoder-ffn-embed-dim",
                         "--encoder-attention-heads", "--decoder-attention-heads",
                         "--marian-activation-fn", "--layernorm-eps")


def export_marian(state, cfg, tensors: Tensors, reference: Path, data: Optional[Path],
                  out_dir: Path, force: bool) -> Export:
    transformers = _transformers()
    model_cfg, task_cfg = cfg["model"], cfg.get("task") or {}
    checkpoint = tensors.checkpoint
    config, config_path = read_marian_config(reference, TOOL)
    vocab_path, _, _ = marian_tokenizer_files(reference)
    # the checkpoint's table less fairseq's own <s>, unless Marian's vocabulary has one
    rows = tensors.state["encoder.embed_tokens.weight"].size(0) - (
        0 if model_cfg.get("marian_has_bos") else 1)
    pieces = read_vocabulary(vocab_path, rows, checkpoint, config["vocab_size"])
    vocabulary = marian_vocabulary(pieces, config, vocab_path, config_path)
    expected = marian_model_arguments(config, has_bos=vocabulary.bos is not None)
    for option in _MARIAN_SHAPE_OPTIONS:
        want = expected[expected.index(option) + 1]
        have = model_cfg.get(option[2:].replace("-", "_"))
        if have is None or (str(have) != want and not _same_number(have, want)):
            raise AddropError(f"CHECKPOINT {checkpoint}: {option} {have}, but --reference "
                              f"{reference} needs {option} {want}; give the Hugging Face "
                              "directory the model was converted from")
    for flag, value in (("no_scale_embedding", "--no-scale-embedding" in expected),
                        ("marian_has_bos", "--marian-has-bos" in expected),
                        ("share_all_embeddings", True)):
        if bool(model_cfg.get(flag)) != value:
            raise AddropError(f"CHECKPOINT {checkpoint}: {flag} is {bool(model_cfg.get(flag))}, "
                              f"--reference {reference} needs {value}")
    source_lang, _ = language_pair(cfg, data)
    dictionary = data_file(cfg, data, f"dict.{source_lang}.txt", required=False) \
        if source_lang else None
    if dictionary is not None and dictionary_symbols(dictionary, False) != vocabulary.names:
        raise AddropError(f"{dictionary} is not the dictionary of {vocab_path}: --reference must "
                          "be the OPUS-MT directory the model was converted from")

    table = tensors.take("encoder.embed_tokens.weight")
    for key in ("decoder.embed_tokens.weight", "decoder.output_projection.weight"):
        if not torch.equal(tensors.take(key), table):
            raise AddropError(f"{key} differs from encoder.embed_tokens.weight; MarianMTModel has "
                              "one shared table")
    bias = tensors.take("decoder.final_logits_bias")
    marian_rows = len(pieces)
    if table.size(0) != len(vocabulary.order):
        raise AddropError(f"encoder.embed_tokens.weight has {table.size(0)} rows, the reference "
                          f"vocabulary needs {len(vocabulary.order)}; nothing was written")
    hf_table = torch.zeros(marian_rows, table.size(1))
    hf_bias = torch.zeros(marian_rows)
    for position, marian_id in enumerate(vocabulary.order):
        if marian_id is None:  # fairseq's <s>: kept out of the softmax, never trained
            check_zero(table[position], f"row {position} (<s>) of encoder.embed_tokens.weight",
                       "Marian's vocabulary has no <s> to hold it")
            check_zero(bias[position], f"entry {position} (<s>) of decoder.final_logits_bias",
                       "Marian's vocabulary has no <s> to hold it")
        else:
            hf_table[marian_id] = table[position]
            hf_bias[marian_id] = bias[position]
    source = "encoder.embed_tokens.weight"
    produced = {key: (hf_table, source) for key in (
        "model.shared.weight", "model.encoder.embed_tokens.weight",
        "model.decoder.embed_tokens.weight", "lm_head.weight")}
    produced["final_logits_bias"] = (hf_bias.unsqueeze(0), "decoder.final_logits_bias")
    for side, parts in (("encoder", ENCODER_PARTS), ("decoder", DECODER_PARTS)):
        for layer in range(config[f"{side}_layers"]):
            for part in parts:
                for kind in ("weight", "bias"):
                    key = f"{side}.layers.{layer}.{part}.{kind}"
                    produced["model." + key] = (tensors.take(key), key)
    tensors.check_all_taken("MarianMTModel")

    hf_config = transformers.MarianConfig.from_pretrained(str(reference))
    for name in ("dropout", "attention_dropout", "activation_dropout"):
        if model_cfg.get(name) is not None:
            setattr(hf_config, name, float(model_cfg[name]))
    hf_config.architectures = ["MarianMTModel"]
    model = transformers.MarianMTModel(hf_config).eval()
    fill_model(model, produced, "MarianMTModel", aliases=(
        "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"))
    if (reference / "generation_config.json").is_file():
        model.generation_config = transformers.GenerationConfig.from_pretrained(str(reference))
    try:
        tokenizer = transformers.MarianTokenizer.from_pretrained(str(reference))
    except Exception as error:  # sentencepiece missing, unreadable model: name the directory
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise AddropError(f"--reference {reference}: MarianTokenizer cannot load it "
                          f"({type(error).__name__}: {first})") from None
    write_directory(out_dir, force, model, tokenizer, "MarianMTModel")
    return Export(out_dir, "MarianMTModel", reference)


def _same_number(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


# --- transformers trained from scratch: FSMT ------------------------------------------------------

# fairseq options that FSMT's layout fixes: (option, the value FSMT needs, what FSMT has instead)
_FSMT_LAYOUT = (
    ("share_all_embeddings", True, "one table shared by encoder, decoder and output (train with "
                                   "--share-all-embeddings and a joined dictionary)"),
    ("encoder_normalize_before", False, "post-LN layers"),
    ("decoder_normalize_before", False, "post-LN layers"),
    ("layernorm_embedding", False, "no layer norm on the embeddings"),
    ("encoder_learned_pos", False, "sinusoidal positions"),
    ("decoder_learned_pos", False, "sinusoidal positions"),
    ("no_token_positional_embeddings", False, "positional embeddings"),
    ("cross_self_attention", False, "separate self- and cross-attention"),
    ("no_cross_attention", False, "cross-attention"),
    ("adaptive_softmax_cutoff", None, "a plain output projection"),
    ("adaptive_input", False, "plain input embeddings"),
)
SENTENCEPIECE_MODEL = "spm.model"  # where addrop-prepare-translation leaves it, beside bin/


def fairseq_sentencepiece_tokenizer(spm_model: Path, dictionary: Path):
    """A fast tokenizer that gives fairseq's ids: the sentencepiece model's own normalizer and
    Viterbi segmentation, its pieces numbered as ``dictionary`` numbers them, ``</s>`` appended
    (what ``prepare_translation.py`` + ``fairseq-preprocess`` make of a line)."""
    transformers = _transformers()
    from fairseq.data import Dictionary
    from tokenizers import processors
    from tokenizers.models import Unigram
    from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf

    proto = import_protobuf().ModelProto()
    try:
        proto.ParseFromString(spm_model.read_bytes())
    except Exception:  # protobuf's DecodeError, and whatever a truncated file raises
        raise AddropError(f"{spm_model}: not a sentencepiece model") from None
    if proto.trainer_spec.model_type != 1:
        kind = "BPE" if proto.trainer_spec.model_type == 2 else "non-unigram"
        raise AddropError(f"{spm_model}: a sentencepiece {kind} model; only unigram models "
                          "(prepare_translation.py's) are exported")
    fairseq_dict = Dictionary.load(str(dictionary))
    pieces = {piece.piece: (piece.score, piece.type) for piece in proto.pieces}
    # 2 unknown, 3 control: sentencepiece never reads them from text
    text_pieces = [p for p, (_, kind) in pieces.items() if kind not in (2, 3)]
    unlisted = [p for p in text_pieces if fairseq_dict.index(p) == fairseq_dict.unk()]
    if unlisted:
        raise AddropError(f"{dictionary}: sentencepiece piece {unlisted[0]!r} of {spm_model} is "
                          "not in it (fairseq reads it as <unk>, which no tokenizer can reproduce)")
    never = min(score for score, _ in pieces.values()) - 1e6  # a symbol text never yields
    vocab = [(symbol, never if index < fairseq_dict.nspecial or pieces.get(symbol, (0, 3))[1]
              in (2, 3) else pieces[symbol][0])
             for index, symbol in enumerate(fairseq_dict.symbols)]
    tokenizer = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab)
    tokenizer.model = Unigram(vocab, unk_id=fairseq_dict.unk(),
                              byte_fallback=proto.trainer_spec.byte_fallback)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", fairseq_dict.eos())])
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", pad_token="<pad>", eos_token="</s>",
        unk_token="<unk>", split_special_tokens=True), fairseq_dict


def export_transformer(cfg, tensors: Tensors, reference, data: Optional[Path], out_dir: Path,
                       force: bool) -> Export:
    transformers = _transformers()
    model_cfg, task_cfg = cfg["model"], cfg.get("task") or {}
    arch, checkpoint = architecture(cfg), tensors.checkpoint
    for option, needed, what in _FSMT_LAYOUT:
        value = model_cfg.get(option)
        if (bool(value) != needed) if isinstance(needed, bool) else value not in (None, "", needed):
            raise AddropError(
                f"--arch {arch} with {option}={value} is not exportable: the Hugging Face class "
                f"with fairseq's transformer layout (FSMTForConditionalGeneration) has {what}")
    width = int(model_cfg["encoder_embed_dim"])
    for option in ("decoder_embed_dim", "decoder_output_dim", "decoder_input_dim"):
        if int(model_cfg.get(option) or width) != width:
            raise AddropError(f"--arch {arch}: {option} {model_cfg[option]} differs from "
                              f"encoder_embed_dim {width}; FSMT has one width")
    activation = str(model_cfg.get("activation_fn") or "relu")
    if activation not in HF_ACTIVATIONS:
        raise AddropError(f"--activation-fn {activation} has no transformers counterpart "
                          f"(expected one of {sorted(HF_ACTIVATIONS)})")
    source, target = language_pair(cfg, data)
    if not source:
        raise AddropError("the checkpoint names no language pair and its data has no "
                          "train.SRC-TGT.SRC.bin to read it from; pass --data DIR")
    dictionary = data_file(cfg, data, f"dict.{source}.txt")
    if dictionary.read_bytes() != data_file(cfg, data, f"dict.{target}.txt").read_bytes():
        raise AddropError(f"{dictionary.parent}: dict.{source}.txt and dict.{target}.txt differ; "
                          "FSMT's tokenizer here is one vocabulary (a joined dictionary)")
    if reference is not None:
        spm_model = Path(reference)
        if spm_model.is_dir():
            spm_model = spm_model / SENTENCEPIECE_MODEL
    else:
        spm_model = dictionary.parent.parent / SENTENCEPIECE_MODEL
    if not spm_model.is_file():
        raise AddropError(f"no reference tokenizer: {spm_model} does not exist; pass --reference "
                          "SPM_MODEL (the sentencepiece model the data was encoded with)")
    if (spm_model.parent / "spm.target.model").is_file() and reference is None:
        raise AddropError(f"{spm_model.parent / 'spm.target.model'}: a separate target "
                          "sentencepiece model; the export's tokenizer is one model")
    tokenizer, fairseq_dict = fairseq_sentencepiece_tokenizer(spm_model, dictionary)

    table = tensors.take("encoder.embed_tokens.weight")
    for key in ("decoder.embed_tokens.weight", "decoder.output_projection.weight"):
        if key in tensors.state and not torch.equal(tensors.take(key), table):
            raise AddropError(f"{key} differs from encoder.embed_tokens.weight; the export shares "
                              "one table")
    if table.size(0) != len(fairseq_dict):
        raise AddropError(f"encoder.embed_tokens.weight has {table.size(0)} rows, {dictionary} "
                          f"{len(fairseq_dict)} symbols")
    layers = {side: int(model_cfg[f"{side}_layers"]) for side in ("encoder", "decoder")}
    produced = {f"model.{side}.embed_tokens.weight": (table, "encoder.embed_tokens.weight")
                for side in ("encoder", "decoder")}
    produced["model.decoder.output_projection.weight"] = (table, "encoder.embed_tokens.weight")
    for side, parts in (("encoder", ENCODER_PARTS), ("decoder", DECODER_PARTS)):
        for layer in range(layers[side]):
            for part in parts:
                for kind in ("weight", "bias"):
                    key = f"{side}.layers.{layer}.{part}.{kind}"
                    produced["model." + key] = (tensors.take(key), key)
    tensors.check_all_taken("FSMTForConditionalGeneration")

    pad, eos = fairseq_dict.pad(), fairseq_dict.eos()
    config = transformers.FSMTConfig(
        langs=[source, target], src_vocab_size=len(fairseq_dict),
        tgt_vocab_size=len(fairseq_dict), activation_function=HF_ACTIVATIONS[activation],
        d_model=width, encoder_layers=layers["encoder"], decoder_layers=layers["decoder"],
        encoder_attention_heads=int(model_cfg["encoder_attention_heads"]),
        decoder_attention_heads=int(model_cfg["decoder_attention_heads"]),
        encoder_ffn_dim=int(model_cfg["encoder_ffn_embed_dim"]),
        decoder_ffn_dim=int(model_cfg["decoder_ffn_embed_dim"]),
        max_position_embeddings=int(model_cfg.get("max_source_positions") or 1024),
        scale_embedding=not model_cfg.get("no_scale_embedding"), tie_word_embeddings=True,
        dropout=float(model_cfg.get("dropout") or 0.0),
        attention_dropout=float(model_cfg.get("attention_dropout") or 0.0),
        activation_dropout=float(model_cfg.get("activation_dropout") or 0.0),
        pad_token_id=pad, bos_token_id=fairseq_dict.bos(), eos_token_id=eos,
        decoder_start_token_id=eos,  # fairseq's decoder starts from </s>
        forced_eos_token_id=eos,
        # FSMT's forward leaves out the causal mask when use_cache is on (it expects one token at
        # a time); off, a whole-sequence forward is causal. generate() turns the cache on itself
        use_cache=False, architectures=["FSMTForConditionalGeneration"])
    model = transformers.FSMTForConditionalGeneration(config).eval()
    fill_model(model, produced, "FSMTForConditionalGeneration")
    # fairseq-generate's beam search (fairseq's defaults: --max-len-b 200, no empty output)
    model.generation_config = transformers.GenerationConfig(
        num_beams=4, early_stopping=True, length_penalty=1.0, min_new_tokens=1,
        max_length=202, bad_words_ids=[[pad]], decoder_start_token_id=eos, eos_token_id=eos,
        forced_eos_token_id=eos, pad_token_id=pad, bos_token_id=fairseq_dict.bos(),
        use_cache=True)
    write_directory(out_dir, force, model, tokenizer, "FSMTForConditionalGeneration")
    return Export(out_dir, "FSMTForConditionalGeneration", spm_model)


# --- the entry point -----------------------------------------------------------------------------

def export_hf(checkpoint, out_dir, reference=None, force: bool = False, data=None) -> Export:
    """Writes OUT_DIR, a Hugging Face directory that ``from_pretrained`` loads by itself."""
    import addrop_fairseq  # noqa: F401  (registers the plugin's models for the checkpoint's cfg)

    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    check_dest(out_dir, force, "OUT_DIR")  # before the work, as well as at the end
    state, cfg, weights = read_checkpoint(checkpoint)
    arch = architecture(cfg)
    task = str((cfg.get("task") or {}).get("_name") or "")
    tensors = Tensors(weights, checkpoint)
    for prefix, why in NOT_EXPORTABLE.items():
        if arch == prefix or arch.startswith(prefix + "_"):
            raise AddropError(f"--arch {arch} is not exportable: {why}")
    if arch.startswith(("addrop_transformer", "transformer")):
        return export_transformer(cfg, tensors, reference, data, out_dir, force)
    if arch == "addrop_marian":
        return export_marian(state, cfg, tensors, find_reference(reference, state, cfg), data,
                             out_dir, force)
    encoder = arch == "addrop_hf_encoder" or arch.startswith("roberta")
    if arch.startswith("addrop_roberta_tagger"):
        head = "tokens"
    elif encoder and task in ("addrop_sentence_prediction", "sentence_prediction"):
        head = "sequence"
    elif encoder and task == "masked_lm":
        head = "masked_lm"
    else:
        raise AddropError(f"--arch {arch} with --task {task} is not supported by {TOOL} (it "
                          "exports addrop_marian, addrop_transformer, addrop_roberta_tagger, "
                          "addrop_hf_encoder and roberta_* models)")
    return export_encoder(state, cfg, tensors, find_reference(reference, state, cfg), head,
                          data, out_dir, force)
