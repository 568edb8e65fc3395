"""The eight GLUE tasks without fairseq: files, columns, labels, metrics and submission files.

One table drives every task, so the task, the criterion and the scripts have a single code path
(the paper's official code keeps one copied folder per task instead).

Split names are fairseq's: ``train``, ``valid`` (MNLI: matched), ``valid1`` (MNLI: mismatched),
``test``, ``test1``. Class labels are kept in the order of the Hugging Face ``glue`` ClassLabel,
so a class index means the same thing in fairseq data, in an HF dump and in a submission.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import AddropError
from .text import numbered_lines, read_lines

TASK_NAMES = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte")
METRIC_NAMES = ("accuracy", "f1", "acc_and_f1", "mcc", "pearson", "spearman",
                "pearson_and_spearman")

_TSV = {"train": "train.tsv", "valid": "dev.tsv", "test": "test.tsv"}
_HF = {"train": "train", "valid": "validation", "test": "test"}


@dataclass(frozen=True)
class GlueTask:
    name: str
    display: str
    text_columns: Tuple[str, ...]  # GLUE TSV header names, one per segment
    label_column: str
    labels: Tuple[str, ...]  # TSV label strings in HF ClassLabel order; () for regression
    metrics: Tuple[str, ...]  # the first one is the paper's metric for the task
    submissions: Dict[str, str]  # split -> file name the GLUE server expects
    hf_text_columns: Tuple[str, ...]
    tsv_files: Dict[str, str] = field(default_factory=lambda: dict(_TSV))
    hf_splits: Dict[str, str] = field(default_factory=lambda: dict(_HF))
    headerless_labelled: Optional[Tuple[str, ...]] = None  # CoLA train/dev have no header
    positive_label: Optional[str] = None  # the F1 class

    @property
    def regression(self) -> bool:
        return not self.labels

    @property
    def num_classes(self) -> int:
        return 1 if self.regression else len(self.labels)

    @property
    def pair(self) -> bool:
        return len(self.text_columns) == 2

    @property
    def splits(self) -> Tuple[str, ...]:
        return tuple(self.tsv_files)


TASKS: Dict[str, GlueTask] = {t.name: t for t in (
    GlueTask("cola", "CoLA", ("sentence",), "label", ("0", "1"), ("mcc", "accuracy"),
             {"test": "CoLA.tsv"}, ("sentence",),
             headerless_labelled=("source", "label", "original_label", "sentence")),
    GlueTask("sst2", "SST-2", ("sentence",), "label", ("0", "1"), ("accuracy",),
             {"test": "SST-2.tsv"}, ("sentence",)),
    GlueTask("mrpc", "MRPC", ("#1 String", "#2 String"), "Quality", ("0", "1"),
             ("accuracy", "f1", "acc_and_f1"), {"test": "MRPC.tsv"},
             ("sentence1", "sentence2"), positive_label="1"),
    GlueTask("qqp", "QQP", ("question1", "question2"), "is_duplicate", ("0", "1"),
             ("accuracy", "f1", "acc_and_f1"), {"test": "QQP.tsv"},
             ("question1", "question2"), positive_label="1"),
    GlueTask("stsb", "STS-B", ("sentence1", "sentence2"), "score", (),
             ("pearson", "spearman", "pearson_and_spearman"), {"test": "STS-B.tsv"},
             ("sentence1", "sentence2")),
    GlueTask("mnli", "MNLI", ("sentence1", "sentence2"), "gold_label",
             ("entailment", "neutral", "contradiction"), ("accuracy",),
             {"test": "MNLI-m.tsv", "test1": "MNLI-mm.tsv"}, ("premise", "hypothesis"),
             tsv_files={"train": "train.tsv", "valid": "dev_matched.tsv",
                        "valid1": "dev_mismatched.tsv", "test": "test_matched.tsv",
                        "test1": "test_mismatched.tsv"},
             hf_splits={"train": "train", "valid": "validation_matched",
                        "valid1": "validation_mismatched", "test": "test_matched",
                        "test1": "test_mismatched"}),
    GlueTask("qnli", "QNLI", ("question", "sentence"), "label",
             ("entailment", "not_entailment"), ("accuracy",), {"test": "QNLI.tsv"},
             ("question", "sentence")),
    GlueTask("rte", "RTE", ("sentence1", "sentence2"), "label",
             ("entailment", "not_entailment"), ("accuracy",), {"test": "RTE.tsv"},
             ("sentence1", "sentence2")),
)}


def get_task(name: str) -> GlueTask:
    """Accepts the GLUE spellings too: 'SST-2', 'STS-B', 'MNLI'."""
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in TASKS:
        raise AddropError(f"unknown GLUE task {name!r}; expected one of {', '.join(TASK_NAMES)}")
    return TASKS[key]


@dataclass
class Example:
    texts: Tuple[str, ...]
    label: Optional[str]  # a class label string, or the score as text; None when unlabelled
    where: str  # "file:line", for error messages downstream


# ---------------------------------------------------------------------------------------------
# reading


def read_split(task: GlueTask, directory, split: str, fmt: str = "auto") -> List[Example]:
    """Reads one split of a GLUE TSV directory or of a Hugging Face ``glue`` JSON Lines dump.

    Training and validation splits must be labelled; test splits are labelled only when their
    file has labels (GLUE's own test files do not).
    """
    path = split_file(task, directory, split, fmt)
    if path.suffix == ".tsv":
        return read_tsv(task, path, split)
    return read_jsonl(task, path, split)


def split_file(task: GlueTask, directory, split: str, fmt: str = "auto") -> Path:
    directory = Path(directory)
    if split not in task.tsv_files:
        raise AddropError(f"{task.display} has no split {split!r}; it has {', '.join(task.splits)}")
    fmt = detect_format(task, directory) if fmt == "auto" else fmt
    if fmt == "tsv":
        return directory / task.tsv_files[split]
    if fmt == "jsonl":
        return directory / f"{task.hf_splits[split]}.jsonl"
    raise AddropError(f"input format {fmt!r}: expected 'tsv', 'jsonl' or 'auto'")


def detect_format(task: GlueTask, directory: Path) -> str:
    if any((directory / name).is_file() for name in task.tsv_files.values()):
        return "tsv"
    if any((directory / f"{name}.jsonl").is_file() for name in task.hf_splits.values()):
        return "jsonl"
    jsonl = ", ".join(f"{name}.jsonl" for name in task.hf_splits.values())
    raise AddropError(
        f"{directory}: found neither GLUE TSV files ({', '.join(task.tsv_files.values())}) nor "
        f"a Hugging Face JSON Lines dump ({jsonl})")


def _labelled_split(split: str) -> bool:
    return split.startswith(("train", "valid"))


def read_tsv(task: GlueTask, path: Path, split: str) -> List[Example]:
    """GLUE TSV files are not CSV: quotes are literal text, so lines are split on tabs only."""
    if not path.is_file():
        raise AddropError(f"missing file {path} ({task.display} {split} split)")
    lines = read_lines(path)
    headerless = task.headerless_labelled is not None and _labelled_split(split)
    header = list(task.headerless_labelled) if headerless else lines[0].split("\t") if lines else []
    first_row = 1 if headerless else 2
    rows = lines if headerless else lines[1:]

    def column(name: str) -> int:
        if name not in header:
            shown = ", ".join(repr(h) for h in header) or "an empty file"
            raise AddropError(f"{path}:1: no column {name!r} in the header ({shown}); "
                              f"is this the {task.display} {split} file?")
        return header.index(name)

    text_index = [column(name) for name in task.text_columns]
    has_labels = _labelled_split(split) or task.label_column in header
    label_index = column(task.label_column) if has_labels else None
    examples = []
    for number, line in enumerate(rows, first_row):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise AddropError(f"{path}:{number}: {len(fields)} tab-separated fields, expected "
                              f"{len(header)} ({', '.join(header)})")
        where = f"{path}:{number}"
        label = None if label_index is None else check_label(task, fields[label_index], where)
        examples.append(Example(tuple(fields[i] for i in text_index), label, where))
    if not examples:
        raise AddropError(f"{path}: no examples")
    return examples


def read_jsonl(task: GlueTask, path: Path, split: str) -> List[Example]:
    """Lines as written by ``datasets.load_dataset('nyu-mll/glue', TASK)[SPLIT].to_json(...)``:
    integer ClassLabel ids (-1 for the unlabelled test sets), STS-B scores as floats."""
    if not path.is_file():
        raise AddropError(f"missing file {path} ({task.display} {split} split)")
    examples = []
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise AddropError(f"{where}: not a JSON object ({e.msg})") from None
        if not isinstance(record, dict):
            raise AddropError(f"{where}: not a JSON object")
        missing = [c for c in task.hf_text_columns if c not in record]
        if missing:
            raise AddropError(f"{where}: no field {missing[0]!r} (fields: "
                              f"{', '.join(record)}); is this the {task.display} {split} file?")
        raw = record.get("label")
        if raw is None or (not task.regression and raw == -1):
            if _labelled_split(split):
                raise AddropError(f"{where}: no label in the {split} split")
            label = None
        elif task.regression:
            label = check_label(task, str(raw), where)
        else:
            if not isinstance(raw, int) or not 0 <= raw < len(task.labels):
                raise AddropError(f"{where}: label {raw!r} is not a {task.display} class id "
                                  f"(0..{len(task.labels) - 1}, or -1 for unlabelled)")
            label = task.labels[raw]
        texts = tuple(str(record[c]) for c in task.hf_text_columns)
        examples.append(Example(texts, label, where))
    if not examples:
        raise AddropError(f"{path}: no examples")
    if len({e.label is None for e in examples}) > 1:
        first = next(e for e in examples if e.label is None)
        raise AddropError(f"{first.where}: unlabelled example in a labelled file")
    return examples


def check_label(task: GlueTask, value: str, where: str) -> str:
    if task.regression:
        try:
            score = float(value)
        except ValueError:
            raise AddropError(f"{where}: {task.display} score {value!r} is not a number") from None
        if not math.isfinite(score):
            raise AddropError(f"{where}: {task.display} score {value!r} is not finite")
        return value
    if value not in task.labels:
        raise AddropError(f"{where}: unknown {task.display} label {value!r}; expected one of "
                          f"{', '.join(task.labels)}")
    return value


def truncate_pair(first: List, second: Optional[List], max_tokens: int
                  ) -> Tuple[List, Optional[List]]:
    """Longest-first truncation with the split Hugging Face's (Rust) tokenizers choose: the
    shorter segment is kept whole when it leaves the other room, else both get about half."""
    if second is None:
        return list(first[:max_tokens]), None
    if len(first) + len(second) <= max_tokens:
        return list(first), list(second)
    swap = len(first) > len(second)
    short, long_ = (len(second), len(first)) if swap else (len(first), len(second))
    long_ = short if short > max_tokens else max(short, max_tokens - short)
    if short + long_ > max_tokens:
        short = max_tokens // 2
        long_ = short + max_tokens % 2
    n_first, n_second = (long_, short) if swap else (short, long_)
    return list(first[:n_first]), list(second[:n_second])


# ---------------------------------------------------------------------------------------------
# metrics: fractions in [0, 1] (correlations in [-1, 1]); fairseq logs them as percentages


def glue_metrics(names: Sequence[str], predictions, targets, positive: int = 1) -> Dict[str, float]:
    """Class indices (classification) or scores (regression) in; the named metrics out."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import f1_score, matthews_corrcoef

    predictions, targets = np.asarray(predictions), np.asarray(targets)
    if predictions.shape != targets.shape:
        raise ValueError(f"{predictions.shape[0]} predictions for {targets.shape[0]} targets")
    values: Dict[str, float] = {}

    def accuracy():
        return float((predictions == targets).mean())

    def f1():
        return float(f1_score(targets, predictions, pos_label=positive, average="binary",
                              zero_division=0))

    def correlation(fn):
        # undefined for constant inputs (e.g. an untrained regressor); 0 like the paper's code
        if len(targets) < 2 or np.ptp(predictions) == 0 or np.ptp(targets) == 0:
            return 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(fn(predictions.astype(np.float64), targets.astype(np.float64))[0])
        return value if math.isfinite(value) else 0.0

    for name in names:
        if name == "accuracy":
            values[name] = accuracy()
        elif name == "f1":
            values[name] = f1()
        elif name == "acc_and_f1":
            values[name] = (accuracy() + f1()) / 2
        elif name == "mcc":
            with warnings.catch_warnings():  # a single class in both: sklearn returns 0 and warns
                warnings.simplefilter("ignore")
                values[name] = float(matthews_corrcoef(targets, predictions))
        elif name == "pearson":
            values[name] = correlation(pearsonr)
        elif name == "spearman":
            values[name] = correlation(spearmanr)
        elif name == "pearson_and_spearman":
            values[name] = (correlation(pearsonr) + correlation(spearmanr)) / 2
        else:
            raise ValueError(f"unknown GLUE metric {name!r}; expected one of {METRIC_NAMES}")
    return values


def default_metrics(regression: bool) -> Tuple[str, ...]:
    """For data that is not one of the eight tasks."""
    return ("pearson", "spearman", "pearson_and_spearman") if regression else ("accuracy",)


# ---------------------------------------------------------------------------------------------
# submission files


def submission_name(task: GlueTask, split: str) -> str:
    if split not in task.submissions:
        raise AddropError(f"GLUE takes {task.display} submissions for "
                          f"{', '.join(task.submissions)} only, not for split {split!r}")
    return task.submissions[split]


def write_submission(path, task: GlueTask, predictions: Sequence) -> None:
    """``index<TAB>prediction`` in test-file order; STS-B scores clipped to GLUE's 0-5 range."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("index\tprediction\n")
        for index, value in enumerate(predictions):
            if task.regression:
                value = f"{min(5.0, max(0.0, float(value))):.3f}"
            elif value not in task.labels:
                raise ValueError(f"prediction {value!r} is not a {task.display} label")
            f.write(f"{index}\t{value}\n")
