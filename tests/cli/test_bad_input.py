"""Bad options and data give one clear line through addrop-train, never a traceback.

Every case runs ``addrop-train ...`` (fairseq-train with the plugin and the package's command
policy) in a subprocess (they run two at a time: each costs a fairseq start-up) and checks that
stderr ends with one ``addrop-train: error: ...`` line naming the bad value and what is allowed.
Plain ``fairseq-train --user-dir`` shows the same message as the last line of Python's traceback.
"""
import math
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from addrop_fairseq.config import parse_layers, settings_from_config
from addrop_fairseq.errors import AddropError
from conftest import PLUGIN, run_cli
from test_resume import TINY_TRANSFORMER, tiny_translation_data

ADDROP = ["--task", "addrop_translation", "--criterion", "addrop_label_smoothed_cross_entropy"]

# case -> (data directory variant, arguments, fragments the one-line error must contain)
CASES = {
    "p zero": ("full", [*ADDROP, "--addrop-p", "0"], ["--addrop-p=0.0", "outside (0, 1]"]),
    "p above one": ("full", [*ADDROP, "--addrop-p", "1.5"], ["--addrop-p=1.5", "outside (0, 1]"]),
    "q negative": ("full", [*ADDROP, "--addrop-q", "-0.2"], ["--addrop-q=-0.2", "outside (0, 1]"]),
    "layer out of range": ("full", [*ADDROP, "--addrop-layers", "0,2"],
                           ["layer 2 is out of range", "0..1"]),
    "unknown module": ("full", [*ADDROP, "--addrop-modules", "encoder_self,encoder_sef"],
                       ["'encoder_sef'", "encoder_self, decoder_self, encoder_decoder"]),
    "criterion option, plain criterion": (
        "full", ["--task", "addrop_translation", "--criterion", "label_smoothed_cross_entropy",
                 "--addrop-schedule", "off", "--addrop-p", "0.5"],
        ["--addrop-p 0.5", "AD-DROP criteria", "addrop_label_smoothed_cross_entropy"]),
    "task option, plain task": (
        "full", ["--task", "translation", "--criterion", "label_smoothed_cross_entropy",
                 "--addrop-schedule", "cross"],
        ["--addrop-schedule cross", "AD-DROP tasks", "addrop_translation"]),
    "AD-DROP criterion, plain task": (
        "full", ["--task", "translation", "--criterion", "addrop_label_smoothed_cross_entropy"],
        ["--criterion addrop_label_smoothed_cross_entropy", "--task translation", "addrop_*"]),
    "AD-DROP schedule, plain criterion": (
        "full", ["--task", "addrop_translation", "--criterion", "label_smoothed_cross_entropy"],
        ["--addrop-schedule cross", "LabelSmoothedCrossEntropyCriterion", "--addrop-schedule off"]),
    "plain architecture": ("full", [*ADDROP, "--arch", "transformer"],
                           ["no AD-DROP attention", "--arch addrop_transformer"]),
    "no data directory": ("missing", ADDROP, ["does-not-exist", "does not exist"]),
    "missing dictionary": ("no target dictionary", ADDROP, ["dict.tgt.txt"]),
    "missing valid split": ("no valid split", ADDROP, ["no 'valid' split", "splits found: train"]),
    "no binarized splits": ("dictionaries only", ADDROP,
                            ["no SPLIT.SRC-TGT.* files", "--source-lang"]),
    # cut files: found when the split is loaded, not when a batch reaches the missing bytes
    ".bin missing its last 40 bytes": (
        "train.src-tgt.src.bin -40", ADDROP,
        ["train.src-tgt.src.idx and .bin: truncated or corrupt", "but the .bin has",
         "rerun addrop-prepare-translation"]),
    "half a .bin": ("valid.src-tgt.tgt.bin /2", ADDROP,
                    ["valid.src-tgt.tgt.idx and .bin: truncated", "rerun"]),
    "half an .idx": ("train.src-tgt.tgt.idx /2", ADDROP,
                     ["train.src-tgt.tgt.idx and .bin: truncated", "the index announces"]),
}


def data_variants(root):
    full = tiny_translation_data(root / "data", pairs=40, valid=8)
    variants = {"full": full, "missing": root / "does-not-exist"}
    for name, drop in (("no target dictionary", ["dict.tgt.txt"]),
                       ("no valid split", [f.name for f in full.glob("valid.*")]),
                       ("dictionaries only", [f.name for f in full.iterdir()
                                              if f.suffix in (".bin", ".idx")])):
        shutil.copytree(full, root / name)
        for file in drop:
            (root / name / file).unlink()
        variants[name] = root / name
    for name in [case[0] for case in CASES.values() if case[0].endswith(("-40", "/2"))]:
        file, cut = name.split(" ")
        shutil.copytree(full, root / name)
        size = (root / name / file).stat().st_size
        os.truncate(root / name / file, size - 40 if cut == "-40" else size // 2)
        variants[name] = root / name
    return variants


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    data = data_variants(root)

    def train(case):
        variant, args, _ = CASES[case]
        arch = [] if "--arch" in args else TINY_TRANSFORMER
        return run_cli("addrop_fairseq.cli.train", data[variant], *arch, *args,
                       "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "200", "--cpu",
                       "--max-epoch", "1", "--save-dir", root / "checkpoints" / case, check=False)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(CASES, pool.map(train, CASES)))


class Options:
    """The criterion options as fairseq passes them, with one value changed."""

    def __init__(self, **changes):
        self.__dict__.update(addrop_p=0.3, addrop_q=0.3, addrop_layers="all",
                             addrop_modules="encoder_self", addrop_attribution="ga",
                             addrop_iga_steps=20, addrop_target="pseudo", addrop_strategy="high")
        self.__dict__.update(changes)


@pytest.mark.parametrize("name, value", [
    ("p", math.nan), ("p", math.inf), ("p", -math.inf), ("p", 1 + 1e-9), ("p", -1e-12),
    ("q", 0.0), ("q", math.nan), ("q", 2),
])
def test_rates_outside_the_unit_interval_are_refused(name, value):
    with pytest.raises(AddropError, match=rf"--addrop-{name}=.* is outside \(0, 1\]"):
        settings_from_config(Options(**{f"addrop_{name}": value}))


@pytest.mark.parametrize("value", [1e-9, 0.5, 1.0, 1])
def test_rates_inside_the_unit_interval_are_accepted(value):
    assert settings_from_config(Options(addrop_p=value, addrop_q=value)).p == value


@pytest.mark.parametrize("spec, reason", [
    ("-1", "indices must be >= 0"), ("x", "expected 'all' or comma-separated indices"),
    ("0,,a", "expected 'all' or comma-separated indices"), (",", "no layer index given"),
    ("", "no layer index given"), (" , ", "no layer index given")])
def test_malformed_layer_lists_are_refused(spec, reason):
    with pytest.raises(AddropError, match=f"--addrop-layers={spec!r}: {reason}"):
        parse_layers(spec)


@pytest.mark.parametrize("name, value", [("attribution", "gradient"), ("strategy", "top"),
                                         ("target", "labels"), ("iga_steps", 0)])
def test_other_criterion_options_name_the_bad_value(name, value):
    with pytest.raises(AddropError, match=str(value)):
        settings_from_config(Options(**{f"addrop_{name}": value}))


def binarized(path, rows, impl="mmap"):
    """A fairseq indexed dataset of ``rows`` at ``path``.{idx,bin}, as fairseq-preprocess writes."""
    import torch
    from fairseq.data import indexed_dataset

    builder = indexed_dataset.make_builder(f"{path}.bin", impl, vocab_size=500)
    for row in rows:
        builder.add_item(torch.IntTensor(row))
    builder.finalize(f"{path}.idx")
    return str(path)


@pytest.mark.parametrize("impl", ["mmap", "cached"])
def test_index_and_data_sizes_must_agree(tmp_path, impl):
    from addrop_fairseq.data.checks import problem

    rows = [[5, 6, 7], [8], [9, 10, 11, 12, 13], []]
    prefix = binarized(tmp_path / "train", rows, impl)
    assert problem(prefix) is None
    bin_size, idx_size = os.path.getsize(prefix + ".bin"), os.path.getsize(prefix + ".idx")
    original = {ext: open(prefix + ext, "rb").read() for ext in (".bin", ".idx")}

    def damaged(ext, content):
        with open(prefix + ext, "wb") as f:
            f.write(content)
        found = problem(prefix)
        with open(prefix + ext, "wb") as f:
            f.write(original[ext])
        return found

    assert "but the .bin has" in damaged(".bin", original[".bin"][:-2])  # last element cut
    assert "is longer than" in damaged(".bin", original[".bin"] + b"\0\0")  # stale tail
    assert damaged(".bin", b"") is not None
    assert "the index announces 4 sentences" in damaged(".idx", original[".idx"][:idx_size - 3])
    assert "shorter than" in damaged(".idx", original[".idx"][:12])
    assert problem(prefix) is None and os.path.getsize(prefix + ".bin") == bin_size


def test_the_tagging_task_names_a_truncated_split(tmp_path):
    from test_ner_fixtures import prepared_corpus, tagging_setup

    data = prepared_corpus(tmp_path)
    label = data / "label" / "valid.bin"
    os.truncate(label, label.stat().st_size - 1)
    with pytest.raises(AddropError, match=rf"{data / 'label' / 'valid'}.idx and .bin: truncated or "
                                          r"corrupt .* rerun addrop-prepare-conll2003"):
        tagging_setup(data)
