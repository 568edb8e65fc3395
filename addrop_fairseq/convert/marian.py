"""OPUS-MT (Hugging Face MarianMT) into ``addrop_marian``.

In: a MarianMT directory (config.json, model.safetensors or pytorch_model.bin, vocab.json,
source.spm, target.spm). Out: ``model.pt`` (a fairseq checkpoint), ``dict.SRC.txt`` and
``dict.TGT.txt`` (one shared vocabulary), the two sentencepiece models, and ``conversion.json``
with the fairseq command lines for this model.

Marian numbers its vocabulary ``</s>`` = 0, ``<unk>`` = 1, ..., ``<pad>`` = last; a fairseq
dictionary starts ``<s> <pad> </s> <unk>``. The shared embedding rows and the output bias are
permuted into fairseq's order; fairseq's ``<s>``, which Marian lacks, gets a zero row that the
model keeps out of the softmax (see ``models/addrop_marian.py`` for that and the other
differences handled at run time).
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from ..errors import AddropError
from ..models.addrop_marian import MARIAN_ACTIVATIONS, marian_sinusoids
from . import (
    FAIRSEQ_SPECIALS,
    build_fairseq,
    check_field_types,
    fairseq_names,
    load_converted,
    read_config,
    read_json,
    read_json_object,
    read_weights,
    require_file,
    save_checkpoint,
    shell_join,
    write_dictionary,
)

# layer parts under the same names on both sides (export.py maps them back)
ENCODER_PARTS = [f"self_attn.{p}_proj" for p in "qkv"] + [
    "self_attn.out_proj", "self_attn_layer_norm", "fc1", "fc2", "final_layer_norm"]
DECODER_PARTS = ENCODER_PARTS + [f"encoder_attn.{p}_proj" for p in "qkv"] + [
    "encoder_attn.out_proj", "encoder_attn_layer_norm"]
EMBEDDING_KEYS = ("shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight",
                   "lm_head.weight")
POSITION_KEYS = ("encoder.embed_positions.weight", "decoder.embed_positions.weight")
# fairseq 0.12 drops a split's last batch when it is not a multiple of this option (default 8):
# without it, fairseq-generate skips up to 7 test sentences (fairseq issues #5036, #5351)
_KEEP_EVERY_SENTENCE = ("--required-batch-size-multiple", "1")
# transformers' MarianConfig defaults: a config.json may leave out what equals them
MARIAN_DEFAULTS = {
    "vocab_size": 58101, "max_position_embeddings": 1024, "d_model": 1024,
    "encoder_layers": 12, "decoder_layers": 12, "encoder_ffn_dim": 4096, "decoder_ffn_dim": 4096,
    "encoder_attention_heads": 16, "decoder_attention_heads": 16, "encoder_layerdrop": 0.0,
    "decoder_layerdrop": 0.0, "activation_function": "gelu", "dropout": 0.1,
    "attention_dropout": 0.0, "activation_dropout": 0.0, "scale_embedding": False,
    "pad_token_id": 58100, "decoder_start_token_id": 58100, "eos_token_id": 0,
    "share_encoder_decoder_embeddings": True, "tie_word_embeddings": True,
}
# AD-DROP's p and q for the paper's two OPUS-MT fine-tunings (appendix A.2)
PAPER_P_Q = {("en", "ro"): (0.2, 0.2), ("tr", "en"): (0.6, 0.1)}


@dataclass
class MarianConversion:
    checkpoint: Path
    source_lang: str
    target_lang: str
    source_spm: Path
    target_spm: Path
    dictionaries: Dict[str, Path]
    model_arguments: List[str]
    fairseq_index: List[int]  # fairseq_index[marian_id] = the same symbol's fairseq index
    generation: Dict[str, float] = field(default_factory=dict)

    def commands(self, data: str = "DATA", raw: str = "RAW", encoded: str = "SPM",
                 save_dir: str = "checkpoints", plugin: str = "addrop_fairseq") -> List[str]:
        """Shell command lines, from raw parallel text RAW/{train,valid,test}.{src,tgt} to BLEU."""
        s, t = self.source_lang, self.target_lang
        lines = ["# 1. sentencepiece, as MarianTokenizer splits (source and target models differ)"]
        for split in ("train", "valid", "test"):
            for lang, spm in ((s, self.source_spm), (t, self.target_spm)):
                lines.append(shell_join(["addrop-convert-opus-mt", "encode",
                                         "--spm-model", spm, "--input", f"{raw}/{split}.{lang}",
                                         "--output", f"{encoded}/{split}.{lang}"]))
        lines.append("# 2. binarize with the model's own vocabulary")
        lines.append(shell_join([
            "fairseq-preprocess", "--source-lang", s, "--target-lang", t,
            "--trainpref", f"{encoded}/train", "--validpref", f"{encoded}/valid",
            "--testpref", f"{encoded}/test", "--srcdict", self.dictionaries[s],
            "--tgtdict", self.dictionaries[t], "--destdir", data, "--workers", "4"]))
        p, q = PAPER_P_Q.get((s, t), (0.3, 0.3))
        lines.append("# 3. fine-tune with AD-DROP (paper, appendix A.2: encoder self-attention, all "
                     "layers, cross-tuning, 5 epochs, lr 2e-5); model options must match the "
                     "checkpoint")
        lines.append(shell_join([
            "fairseq-train", data, "--user-dir", plugin, "--task", "addrop_translation",
            "-s", s, "-t", t, *self.model_arguments,
            "--finetune-from-model", self.checkpoint, *_KEEP_EVERY_SENTENCE,
            "--skip-invalid-size-inputs-valid-test",
            "--criterion", "addrop_label_smoothed_cross_entropy", "--label-smoothing", "0.1",
            "--addrop-p", str(p), "--addrop-q", str(q), "--addrop-modules", "encoder_self",
            "--addrop-layers", "all", "--addrop-schedule", "cross",
            "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr", "2e-5",
            "--lr-scheduler", "fixed", "--clip-norm", "1.0", "--max-tokens", "4096", "--max-epoch", "5",
            "--save-dir", save_dir,
            "--eval-bleu", "--eval-bleu-args", json.dumps(self.fairseq_generation()),
            "--eval-bleu-remove-bpe", "sentencepiece", "--best-checkpoint-metric", "bleu",
            "--maximize-best-checkpoint-metric"]))
        lines.append("# 4. translate the test set and score it with sacrebleu")
        lines.append(shell_join([
            "fairseq-generate", data, "--user-dir", plugin, "--task", "addrop_translation",
            "-s", s, "-t", t, "--path", f"{save_dir}/checkpoint_best.pt", "--gen-subset", "test",
            *self.generate_arguments(), "--batch-size", "32",
            "--post-process", "sentencepiece", "--scoring", "sacrebleu"]))
        return lines

    def fairseq_generation(self) -> Dict[str, float]:
        return {"beam": int(self.generation["beam"]), "lenpen": self.generation["lenpen"],
                "max_len_a": 0, "max_len_b": int(self.generation["max_len_b"])}

    def generate_arguments(self) -> List[str]:
        g = self.fairseq_generation()
        return ["--beam", str(g["beam"]), "--lenpen", str(g["lenpen"]),
                "--max-len-a", "0", "--max-len-b", str(g["max_len_b"]), *_KEEP_EVERY_SENTENCE]


def read_vocabulary(path: Path, rows: int, weights_path: Path, config_size: int) -> List[str]:
    """vocab.json as a list indexed by Marian id, checked against the embedding table."""
    vocab = read_json(path)
    if not isinstance(vocab, dict):
        raise AddropError(f"{path}: expected a JSON object mapping pieces to ids")
    by_id: Dict[int, str] = {}
    for piece, index in vocab.items():
        if not isinstance(index, int) or index < 0:
            raise AddropError(f"{path}: piece {piece!r} has id {index!r}, expected an integer >= 0")
        if index in by_id:
            raise AddropError(f"{path}: id {index} is given to both {by_id[index]!r} and {piece!r}")
        by_id[index] = piece
    if len(by_id) != rows or config_size != rows:
        raise AddropError(
            f"vocabulary and embeddings disagree: {path} has {len(by_id)} entries, config.json "
            f"says vocab_size {config_size}, the embedding table in {weights_path} has {rows} rows")
    missing = [i for i in range(rows) if i not in by_id]
    if missing:
        raise AddropError(f"{path}: ids must be 0..{rows - 1}; id {missing[0]} is missing")
    return [by_id[i] for i in range(rows)]


def _strip_prefix(weights: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    # MarianMTModel saves the body under "model."; a bare MarianModel saves it unprefixed
    return {(k[len("model."):] if k.startswith("model.") else k): v for k, v in weights.items()}


def shared_embedding(weights: Dict[str, torch.Tensor], weights_path: Path) -> torch.Tensor:
    present = [k for k in EMBEDDING_KEYS if k in weights]
    if not present:
        raise AddropError(f"{weights_path}: no token embedding ({' / '.join(EMBEDDING_KEYS)}); "
                          "this is not a MarianMT checkpoint")
    table = weights[present[0]]
    for key in present[1:]:
        if not torch.equal(weights[key], table):
            raise AddropError(f"{weights_path}: {key} differs from {present[0]}; Marian models "
                              "with separate encoder/decoder/output tables are not supported")
    return table


def _check_config(config: dict, config_path: Path) -> None:
    if not config["share_encoder_decoder_embeddings"] or config.get(
            "decoder_vocab_size") not in (None, config["vocab_size"]):
        raise AddropError(f"{config_path}: separate source and target vocabularies are not "
                          "supported (share_encoder_decoder_embeddings is false)")
    if config["tie_word_embeddings"] is False:
        raise AddropError(f"{config_path}: tie_word_embeddings is false; the converted model "
                          "shares one table between the embeddings and the output projection")
    activation = config["activation_function"]
    if activation not in MARIAN_ACTIVATIONS:
        raise AddropError(f"{config_path}: activation_function {activation!r} is not supported "
                          f"(expected one of {sorted(MARIAN_ACTIVATIONS)})")
    if config["decoder_start_token_id"] != config["pad_token_id"]:
        raise AddropError(
            f"{config_path}: decoder_start_token_id {config['decoder_start_token_id']} is not "
            f"pad_token_id {config['pad_token_id']}; Marian starts decoding from pad")
    for side in ("encoder", "decoder"):
        heads = config[f"{side}_attention_heads"]
        if config["d_model"] % heads:
            raise AddropError(f"{config_path}: d_model {config['d_model']} is not divisible by "
                              f"{side}_attention_heads {heads}")


def model_arguments(config: dict, has_bos: bool) -> List[str]:
    """The fairseq options that rebuild this Marian model as ``addrop_marian``."""
    args = [
        "--arch", "addrop_marian", "--share-all-embeddings",
        "--encoder-layers", config["encoder_layers"], "--decoder-layers", config["decoder_layers"],
        "--encoder-embed-dim", config["d_model"], "--decoder-embed-dim", config["d_model"],
        "--encoder-ffn-embed-dim", config["encoder_ffn_dim"],
        "--decoder-ffn-embed-dim", config["decoder_ffn_dim"],
        "--encoder-attention-heads", config["encoder_attention_heads"],
        "--decoder-attention-heads", config["decoder_attention_heads"],
        "--dropout", config["dropout"], "--attention-dropout", config["attention_dropout"],
        "--activation-dropout", config["activation_dropout"],
        "--encoder-layerdrop", config["encoder_layerdrop"],
        "--decoder-layerdrop", config["decoder_layerdrop"],
        "--max-source-positions", config["max_position_embeddings"],
        "--max-target-positions", config["max_position_embeddings"],
        "--marian-activation-fn", config["activation_function"],
        # transformers' Marian uses torch's default LayerNorm epsilon
        "--layernorm-eps", "1e-05",
    ]
    if not config["scale_embedding"]:
        args.append("--no-scale-embedding")
    if has_bos:
        args.append("--marian-has-bos")
    return [str(a) for a in args]


def _generation_settings(directory: Path, config: dict) -> Dict[str, float]:
    settings = dict(config)
    generation_path = directory / "generation_config.json"
    if generation_path.is_file():
        settings.update(read_json_object(generation_path, "generation settings"))
        check_field_types(settings, {"max_length": int, "num_beams": int, "length_penalty": float},
                          generation_path, optional=("max_length", "num_beams"))
    max_length = int(settings.get("max_length") or config["max_position_embeddings"])
    # transformers counts the start symbol in max_length; fairseq's max_len_b excludes it and
    # allows one more step for eos
    longest = min(max_length, config["max_position_embeddings"]) - 2
    return {"beam": int(settings.get("num_beams") or 4),
            "lenpen": float(settings.get("length_penalty", 1.0)), "max_len_b": longest}


def _languages(directory: Path, source_lang: Optional[str], target_lang: Optional[str]):
    recorded = {}
    tokenizer_config = directory / "tokenizer_config.json"
    if tokenizer_config.is_file():
        recorded = read_json_object(tokenizer_config, "tokenizer settings")
        check_field_types(recorded, {"source_lang": str, "target_lang": str}, tokenizer_config,
                          optional=("source_lang", "target_lang"))
    source_lang = source_lang or recorded.get("source_lang")
    target_lang = target_lang or recorded.get("target_lang")
    if not source_lang or not target_lang:
        raise AddropError(f"{directory}: give the source and target languages (e.g. -s en -t ro); "
                          "tokenizer_config.json does not record them")
    for lang in (source_lang, target_lang):
        if not re.fullmatch(r"[A-Za-z0-9_-]+", lang):
            raise AddropError(f"language {lang!r}: use letters, digits, '_' or '-' (it names the "
                              "fairseq data files)")
    if source_lang == target_lang:
        raise AddropError(f"source and target language are both {source_lang!r}; fairseq names "
                          "its files by language, so they must differ")
    return source_lang, target_lang


def marian_state_dict(weights: Dict[str, torch.Tensor], config: dict, order: List[Optional[int]],
                      weights_path: Path) -> Dict[str, torch.Tensor]:
    """HF tensor names -> fairseq names, embedding rows and bias permuted by ``order``."""
    weights = _strip_prefix(weights)
    table = shared_embedding(weights, weights_path)
    bias = weights.get("final_logits_bias", torch.zeros(1, table.size(0))).reshape(-1)
    if bias.numel() != table.size(0):
        raise AddropError(f"{weights_path}: final_logits_bias has {bias.numel()} entries but the "
                          f"embedding table has {table.size(0)} rows")
    for key in POSITION_KEYS:
        if key in weights:
            expected = marian_sinusoids(*weights[key].shape)
            if not torch.allclose(weights[key].float(), expected, atol=1e-5):
                raise AddropError(f"{weights_path}: {key} is not Marian's sinusoidal table; "
                                  "this checkpoint is not a MarianMT model")

    def permute(rows: torch.Tensor) -> torch.Tensor:
        zero = torch.zeros_like(rows[:1])
        return torch.cat([rows[i:i + 1] if i is not None else zero for i in order])

    embedding = permute(table).float()
    converted = {"encoder.embed_tokens.weight": embedding,
                 "decoder.embed_tokens.weight": embedding,
                 "decoder.output_projection.weight": embedding,
                 "decoder.final_logits_bias": permute(bias.unsqueeze(1)).reshape(-1).float()}
    used = set(EMBEDDING_KEYS) | set(POSITION_KEYS) | {"final_logits_bias"}
    for side, parts in (("encoder", ENCODER_PARTS), ("decoder", DECODER_PARTS)):
        for layer in range(config[f"{side}_layers"]):
            for part in parts:
                for kind in ("weight", "bias"):
                    key = f"{side}.layers.{layer}.{part}.{kind}"
                    if key not in weights:
                        raise AddropError(f"{weights_path}: missing {key}; this checkpoint does "
                                          f"not match its config.json (a {config['encoder_layers']}"
                                          f"+{config['decoder_layers']}-layer MarianMT model)")
                    converted[key] = weights[key].float()
                    used.add(key)
    unexpected = sorted(set(weights) - used)
    if unexpected:
        raise AddropError(f"{weights_path}: tensors a MarianMT model does not have: "
                          f"{', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
    return converted



def read_marian_config(hf_dir: Path, tool: str):
    """config.json completed with MarianConfig's defaults and checked: (config, its path)."""
    config = {**MARIAN_DEFAULTS, **read_config(hf_dir, ("marian",), tool)}
    config_path = hf_dir / "config.json"
    check_field_types(config, {**{name: type(value) for name, value in MARIAN_DEFAULTS.items()},
                               "decoder_vocab_size": int}, config_path,
                      optional=("decoder_vocab_size",))
    _check_config(config, config_path)
    return config, config_path


def marian_tokenizer_files(hf_dir: Path):
    """MarianTokenizer's files: (vocab.json, source.spm, target.spm); one vocabulary only."""
    if (hf_dir / "target_vocab.json").is_file():
        raise AddropError(f"{hf_dir / 'target_vocab.json'}: separate source and target "
                          "vocabularies are not supported")
    return (require_file(hf_dir, "vocab.json", "Marian vocabulary"),
            require_file(hf_dir, "source.spm", "source sentencepiece model"),
            require_file(hf_dir, "target.spm", "target sentencepiece model"))


@dataclass
class MarianVocabulary:
    """How Marian's ids sit in the fairseq dictionary of a conversion."""
    order: List[Optional[int]]  # order[fairseq index] = Marian id (None: fairseq's own <s>)
    names: List[str]  # the dictionaries' symbols after fairseq's four specials
    renamed: Dict[str, str]
    bos: Optional[int]  # Marian's id of <s>, if its vocabulary has one

    @property
    def fairseq_index(self) -> List[int]:  # fairseq_index[marian_id] = the fairseq index
        index = [0] * sum(i is not None for i in self.order)
        for position, marian_id in enumerate(self.order):
            if marian_id is not None:
                index[marian_id] = position
        return index


def marian_vocabulary(pieces: List[str], config: dict, vocab_path: Path,
                      config_path: Path) -> MarianVocabulary:
    """Marian's eos, pad and unk move to fairseq's slots (and <s> when it has one), the other
    pieces follow in Marian's order; the same order both ways (conversion and export)."""
    index = {piece: i for i, piece in enumerate(pieces)}
    eos, pad = config["eos_token_id"], config["pad_token_id"]
    if "<unk>" not in index:
        raise AddropError(f"{vocab_path}: has no <unk> piece")
    for name, marian_id in (("eos_token_id", eos), ("pad_token_id", pad)):
        if not isinstance(marian_id, int) or not 0 <= marian_id < len(pieces):
            raise AddropError(f"{config_path}: {name} {marian_id!r} is not an id of {vocab_path}")
    bos = index.get("<s>")
    specials = [bos, pad, eos, index["<unk>"]]
    rest = [i for i in range(len(pieces)) if i not in specials]
    names, renamed = fairseq_names([pieces[i] for i in rest], FAIRSEQ_SPECIALS)
    return MarianVocabulary(specials + rest, names, renamed, bos)


def convert_marian(hf_dir, out_dir, source_lang: Optional[str] = None,
                   target_lang: Optional[str] = None) -> MarianConversion:
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    config, config_path = read_marian_config(hf_dir, "convert_opus_mt")
    vocab_path, source_spm, target_spm = marian_tokenizer_files(hf_dir)
    source_lang, target_lang = _languages(hf_dir, source_lang, target_lang)

    weights, weights_path = read_weights(hf_dir)
    table = shared_embedding(_strip_prefix(weights), weights_path)
    if table.size(1) != config["d_model"]:
        raise AddropError(f"{weights_path}: embeddings are {table.size(1)} wide but config.json "
                          f"says d_model {config['d_model']}")
    pieces = read_vocabulary(vocab_path, table.size(0), weights_path, config["vocab_size"])
    vocabulary = marian_vocabulary(pieces, config, vocab_path, config_path)
    order, names, renamed = vocabulary.order, vocabulary.names, vocabulary.renamed
    bos, fairseq_index = vocabulary.bos, vocabulary.fairseq_index

    out_dir.mkdir(parents=True, exist_ok=True)
    dictionaries = {lang: out_dir / f"dict.{lang}.txt" for lang in (source_lang, target_lang)}
    for path in dictionaries.values():
        write_dictionary(path, names)
    copies = {}
    for spm in (source_spm, target_spm):
        copies[spm.name] = out_dir / spm.name
        if spm.resolve() != copies[spm.name].resolve():
            shutil.copyfile(spm, copies[spm.name])

    arguments = model_arguments(config, has_bos=bos is not None)
    cfg, task, model = build_fairseq([
        str(out_dir.resolve()), "--task", "addrop_translation", "-s", source_lang,
        "-t", target_lang, *arguments, "--criterion", "addrop_label_smoothed_cross_entropy",
        "--label-smoothing", "0.1"])
    load_converted(model, marian_state_dict(weights, config, order, weights_path))
    conversion = MarianConversion(
        checkpoint=out_dir / "model.pt", source_lang=source_lang, target_lang=target_lang,
        source_spm=copies["source.spm"], target_spm=copies["target.spm"],
        dictionaries=dictionaries, model_arguments=arguments, fairseq_index=fairseq_index,
        generation=_generation_settings(hf_dir, config))
    record = {"converted_from": str(hf_dir.resolve()), "model_type": "marian",
              "source_lang": source_lang, "target_lang": target_lang,
              "marian_vocabulary_size": len(pieces), "fairseq_dictionary_size": len(order),
              "fairseq_bos_is_marian_symbol": bos is not None, "renamed_pieces": renamed,
              "model_arguments": arguments, "generation": conversion.fairseq_generation()}
    save_checkpoint(conversion.checkpoint, cfg, model, "AddropLabelSmoothedCrossEntropyCriterion",
                    record)
    record["commands"] = conversion.commands()
    with open(out_dir / "conversion.json", "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, ensure_ascii=False)
    return conversion


def marian_pieces(processor, text: str) -> List[str]:
    """One line as MarianTokenizer splits it: a leading >>lang<< code, then sentencepiece."""
    code = []
    if text.startswith(">>") and (end := text.find("<<")) != -1:
        code, text = [text[:end + 2]], text[end + 2:]
    return code + processor.encode(text, out_type=str)


def encode_file(spm_model, source, destination) -> int:
    """Sentencepiece-encodes a text file line by line; returns the number of lines."""
    import sentencepiece

    path = Path(spm_model)
    if not path.is_file():
        raise AddropError(f"missing sentencepiece model: {path} does not exist")
    processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
    source = Path(source)
    if not source.is_file():
        raise AddropError(f"missing input: {source} does not exist")
    Path(destination).parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(source, encoding="utf-8") as inp, open(destination, "w", encoding="utf-8") as out:
        for count, line in enumerate(inp, 1):
            out.write(" ".join(marian_pieces(processor, line.rstrip("\n"))) + "\n")
    return count


def encode_lines(spm_model, lines: Sequence[str]) -> List[str]:
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(spm_model))
    return [" ".join(marian_pieces(processor, line)) for line in lines]
