"""Hugging Face checkpoints into fairseq ones: the library behind ``addrop-convert-*``.

``marian.convert_marian`` (OPUS-MT into ``addrop_marian``) and ``hf_encoder.convert_hf_encoder``
(BERT, RoBERTa, ELECTRA into fairseq's RoBERTa family) share the pieces below: reading a
Hugging Face directory, writing a fairseq dictionary in a chosen order, and building and saving
the fairseq model through fairseq's own task and model registries, so that what is saved is
exactly what ``fairseq-train --finetune-from-model`` and ``fairseq-generate --path`` rebuild.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from ..errors import AddropError

FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def require_file(directory: Path, name: str, what: str) -> Path:
    path = Path(directory) / name
    if not path.is_file():
        raise AddropError(f"missing {what}: {path} does not exist")
    return path


def read_json(path: Path):
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise AddropError(f"{path}: not UTF-8 JSON text (byte 0x{raw[error.start]:02x} at offset "
                          f"{error.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise AddropError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    except RecursionError:
        raise AddropError(f"{path}: not valid JSON (nested too deeply)") from None


def _json_type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(value),
                                                                         type(value).__name__)


# what a field of config.json may hold, by the Python type of the value the converter expects
_EXPECTED = {int: ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
             float: ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
             bool: ("true or false", lambda v: isinstance(v, bool)),
             str: ("a string", lambda v: isinstance(v, str))}


def check_field_types(config: dict, expected: Dict[str, type], path: Path,
                      optional: Sequence[str] = ()) -> None:
    """Every field the converter reads has the JSON type it needs ("d_model": "32" is refused
    here rather than as a TypeError deep inside the conversion); sizes are positive."""
    for name, kind in expected.items():
        if name not in config or (name in optional and config[name] is None):
            continue
        value = config[name]
        wanted, accepts = _EXPECTED[kind]
        if not accepts(value):
            raise AddropError(f"{path}: {name} is {_json_type(value)} ({json.dumps(value)[:40]}), "
                              f"expected {wanted}")
        if kind is int and (name.endswith(("_size", "_dim", "_layers", "_heads", "_embeddings"))
                            or name in ("d_model", "num_hidden_layers", "num_attention_heads")) \
                and value < 1:
            raise AddropError(f"{path}: {name} is {value}, expected a positive integer")


def read_json_object(path: Path, what: str) -> dict:
    value = read_json(path)
    if not isinstance(value, dict):
        raise AddropError(f"{path}: expected a JSON object of {what}, found {_json_type(value)}")
    return value


def read_config(directory: Path, accepted: Sequence[str], converter: str) -> dict:
    directory = Path(directory)
    if not directory.is_dir():
        raise AddropError(f"{directory} is not a directory (expected a Hugging Face model "
                          "directory with config.json)")
    path = require_file(directory, "config.json", "model configuration")
    config = read_json_object(path, "model settings")
    model_type = config.get("model_type")
    if model_type not in accepted:
        raise AddropError(f"{directory / 'config.json'}: model_type {model_type!r} is not "
                          f"supported by {converter} (expected {' or '.join(map(repr, accepted))})")
    return config


def read_weights(directory: Path) -> Tuple[Dict[str, torch.Tensor], Path]:
    """The checkpoint's tensors under their saved names, from safetensors or a pickle."""
    directory = Path(directory)
    for name in WEIGHT_FILES:
        path = directory / name
        if path.is_file():
            return _load_weight_file(path), path
        index = directory / f"{name}.index.json"
        if index.is_file():  # sharded: the index maps every tensor to its shard
            shards = sorted(set(map(str, read_json_object(index, "shards").get("weight_map", {}).values())))
            weights: Dict[str, torch.Tensor] = {}
            for shard in shards:
                weights.update(_load_weight_file(require_file(directory, shard, "weight shard")))
            return weights, index
    raise AddropError(f"missing weights: {directory} has none of {', '.join(WEIGHT_FILES)}")


def _load_weight_file(path: Path) -> Dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise AddropError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def fairseq_names(tokens: Sequence[str], reserved: Iterable[str]) -> Tuple[List[str], Dict[str, str]]:
    """Dictionary entries for ``tokens``; a token that fairseq could never read back is renamed.

    fairseq splits data lines on whitespace and gives its reserved symbols their own slots,
    so a token that is empty, holds whitespace or spells a reserved symbol can never be looked
    up; it keeps its row (indices stay aligned) under a placeholder name.
    """
    reserved = set(reserved)
    names, renamed = [], {}
    for token in tokens:
        if not token or any(ch.isspace() for ch in token) or token in reserved:
            placeholder = f"<unreachable_{len(names)}>"
            renamed[token] = placeholder
            names.append(placeholder)
        else:
            names.append(token)
    return names, renamed


def write_dictionary(path: Path, names: Sequence[str]) -> None:
    """Writes the symbols that follow fairseq's four specials, in this order, and checks it."""
    from fairseq.data import Dictionary

    seen = set(FAIRSEQ_SPECIALS)
    for name in names:
        if name in seen:
            raise AddropError(f"vocabulary symbol {name!r} occurs twice; a fairseq dictionary "
                              "needs unique symbols")
        seen.add(name)
    # decreasing counts keep this order even if something re-sorts the dictionary by count
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{name} {len(names) - i}\n" for i, name in enumerate(names))
    reloaded = Dictionary.load(str(path))
    if reloaded.symbols[reloaded.nspecial:] != list(names):
        raise AssertionError(f"{path} does not read back in the order written")


def build_fairseq(arguments: List[str]):
    """Parses a fairseq-train command line and builds its task and model as fairseq would."""
    import addrop_fairseq  # noqa: F401  (registers the plugin's tasks, models, criteria)
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, arguments)
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    return cfg, task, model


def load_converted(model: torch.nn.Module, converted: Dict[str, torch.Tensor]) -> None:
    """Loads every tensor the model expects; anything missing or extra is a converter bug."""
    expected = model.state_dict()
    # fairseq's version markers are bookkeeping, not weights
    for key, value in expected.items():
        if key.endswith(".version") and key not in converted:
            converted[key] = value
    missing = sorted(set(expected) - set(converted))
    extra = sorted(set(converted) - set(expected))
    if missing or extra:
        raise AssertionError(f"conversion mapping incomplete: missing {missing[:5]}, "
                             f"unexpected {extra[:5]}")
    for key, value in converted.items():
        if value.shape != expected[key].shape:
            raise AssertionError(f"{key}: converted shape {tuple(value.shape)} but the fairseq "
                                 f"model has {tuple(expected[key].shape)}")
    model.load_state_dict(converted, strict=True)


def save_checkpoint(path: Path, cfg, model: torch.nn.Module, criterion_name: str,
                    conversion: Optional[dict] = None) -> None:
    """A checkpoint shaped like fairseq's trainer writes one, at update 0 with no optimizer state."""
    from fairseq.checkpoint_utils import torch_persistent_save
    from omegaconf import OmegaConf

    state = {
        "args": None,
        "cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "model": model.state_dict(),
        "criterion": None,
        "optimizer_history": [{"criterion_name": criterion_name, "optimizer_name": "none",
                               "lr_scheduler_state": {}, "num_updates": 0}],
        "task_state": {},
        "extra_state": {"train_iterator": {"epoch": 1, "iterations_in_epoch": 0, "version": 2},
                        "conversion": conversion or {}},
        "last_optimizer_state": None,
    }
    torch_persistent_save(state, str(path))


def shell_join(words: Iterable[str]) -> str:
    import shlex

    return " ".join(shlex.quote(str(word)) for word in words)
