"""The held-out protocol's data step for GLUE: splits of a task's official files, fixed by a seed.

GLUE's test labels are hidden, so the official dev split plays the test set. What a run may look
at while it trains (to pick its epoch, its p and q) is a *selection split* drawn from the
official training file; the run trains on the rest. Each setting is written as a GLUE task
directory that ``addrop-prepare-glue`` reads unchanged:

============  ==============================================  ====================
file          holds                                           fairseq split
============  ==============================================  ====================
train.tsv     the rows trained on                             ``train``
dev.tsv       the selection split (rows of the official       ``valid``
              train file, disjoint from train.tsv)
test.tsv      the official dev file, whole, with its labels   ``test``
============  ==============================================  ====================

Settings:

- ``full``: a selection split of ``fraction`` of the training rows (stratified by class with
  scikit-learn's ``train_test_split``; plain random for the regression task STS-B), the rest
  trained on;
- ``K`` (few-shot, e.g. 16): K training rows, K / classes of each class, drawn without
  replacement, and a second, disjoint draw of the same size and balance as the selection split
  (few-shot practice: a dev set as small as the training set). Regression tasks have no
  few-shot setting here.

Rows are copied byte for byte (a byte-order mark and the line ends aside), in the order of the
source file. The row numbers drawn are recorded in ``splits.json`` with the source files' sha256,
so a split can be checked against its seed and its source.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import glue
from ..errors import AddropError
from .output_dir import staged_dest
from .text import read_lines

FULL = "full"


@dataclass
class SourceFile:
    """One official file: its header line (None for CoLA's headerless files), its data lines
    in file order and their labels (class label strings, or STS-B scores as text)."""

    path: Path
    header: Optional[str]
    lines: List[str]
    labels: List[str]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def read_source(task: glue.GlueTask, directory, split: str) -> SourceFile:
    """Reads and checks an official file with the project's GLUE reader, keeping raw lines."""
    path = glue.split_file(task, directory, split, "tsv")
    examples = glue.read_split(task, directory, split, "tsv")  # checks every row, names bad ones
    lines = read_lines(path)
    headerless = task.headerless_labelled is not None
    rows = []
    for example in examples:
        number = int(example.where.rsplit(":", 1)[1])  # 1-based line number in the file
        rows.append(lines[number - 1])
    return SourceFile(path, None if headerless else lines[0], rows, [e.label for e in examples])


def selection_split(labels: Sequence[str], fraction: float, seed: int,
                    stratify: bool) -> Tuple[List[int], List[int]]:
    """(rows trained on, selection rows), each sorted: ``fraction`` of the rows drawn for
    selection, stratified by label when ``stratify``."""
    from sklearn.model_selection import train_test_split

    if not 0 < fraction < 1:
        raise AddropError(f"selection fraction {fraction}: expected a number in (0, 1)")
    rows = np.arange(len(labels))
    try:
        train, select = train_test_split(rows, test_size=fraction, random_state=seed,
                                         stratify=list(labels) if stratify else None)
    except ValueError as error:  # e.g. a class with a single row cannot be stratified
        raise AddropError(f"cannot draw a {fraction:g} selection split: {error}") from None
    return sorted(int(r) for r in train), sorted(int(r) for r in select)


def balanced_draw(labels: Sequence[str], classes: Sequence[str], size: int,
                  rng: np.random.Generator, exclude=()) -> List[int]:
    """``size`` rows, ``size / len(classes)`` of each class, drawn without replacement from the
    rows not in ``exclude``; sorted."""
    if size % len(classes):
        raise AddropError(f"few-shot size {size} does not split evenly over the "
                          f"{len(classes)} classes ({', '.join(classes)})")
    per_class = size // len(classes)
    excluded = set(exclude)
    drawn = []
    for label in classes:
        pool = [i for i, value in enumerate(labels) if value == label and i not in excluded]
        if len(pool) < per_class:
            raise AddropError(f"few-shot size {size}: class {label!r} has {len(pool)} rows left, "
                              f"{per_class} needed")
        drawn += [int(i) for i in rng.choice(pool, size=per_class, replace=False)]
    return sorted(drawn)


def few_shot_split(labels: Sequence[str], classes: Sequence[str], size: int,
                   seed: int) -> Tuple[List[int], List[int]]:
    """(training draw, selection draw): two disjoint class-balanced draws of ``size`` rows.
    Each size has its own random stream (from the seed and the size), so the draws of one size
    do not depend on which other sizes are asked for."""
    rng = np.random.default_rng([seed, size])
    train = balanced_draw(labels, classes, size, rng)
    select = balanced_draw(labels, classes, size, rng, exclude=train)
    return train, select


def parse_settings(text: str) -> List[str]:
    """``"full,16,64"`` -> ``["full", "16", "64"]``, checked."""
    settings = [s.strip() for s in str(text).split(",") if s.strip()]
    if not settings:
        raise AddropError("--settings: give at least one of full or a few-shot size (16, 64 ...)")
    for setting in settings:
        if setting != FULL and not (setting.isdigit() and int(setting) > 0):
            raise AddropError(f"--settings: {setting!r} is neither 'full' nor a positive size")
    duplicated = sorted({s for s in settings if settings.count(s) > 1})
    if duplicated:
        raise AddropError(f"--settings: {', '.join(duplicated)} given twice")
    return settings


def make_splits(task_name: str, source_dir, settings: Sequence[str], seed: int,
                fraction: float = 0.1) -> Dict[str, Dict[str, List[int]]]:
    """setting -> {"train": rows, "valid": rows} (0-based data rows of the official train file),
    without writing anything."""
    task = glue.get_task(task_name)
    _check_task(task)
    train = read_source(task, source_dir, "train")
    return _draw(task, train, settings, seed, fraction)


def _check_task(task: glue.GlueTask) -> None:
    if "valid1" in task.tsv_files:
        raise AddropError(f"{task.display} has two dev files; the held-out protocol's splits are "
                          "made for tasks with one (CoLA, SST-2, MRPC, QQP, STS-B, QNLI, RTE)")


def _draw(task, train: SourceFile, settings, seed, fraction):
    drawn = {}
    for setting in settings:
        if setting == FULL:
            rows, select = selection_split(train.labels, fraction, seed,
                                           stratify=not task.regression)
        else:
            if task.regression:
                raise AddropError(f"few-shot setting {setting}: {task.display} is a regression "
                                  "task, which has no class-balanced draw")
            rows, select = few_shot_split(train.labels, task.labels, int(setting), seed)
        drawn[setting] = {"train": rows, "valid": select}
    return drawn


def _write(path: Path, header: Optional[str], lines: List[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        if header is not None:
            out.write(header + "\n")
        out.writelines(line + "\n" for line in lines)


def write_splits(task_name: str, source_dir, dest, settings: Sequence[str], seed: int,
                 fraction: float = 0.1, force: bool = False) -> dict:
    """Writes DEST/SETTING/{train,dev,test}.tsv for each setting and DEST/splits.json, the
    directory whole or not at all; returns what splits.json holds."""
    task = glue.get_task(task_name)
    _check_task(task)
    settings = list(settings)
    train = read_source(task, source_dir, "train")
    official_dev = read_source(task, source_dir, "valid")
    drawn = _draw(task, train, settings, seed, fraction)
    # CoLA's files have no header, but addrop-prepare-glue reads a test split's columns from its
    # header (GLUE's own CoLA test file has one): the official dev file gets CoLA's column names.
    test_header = (official_dev.header if task.headerless_labelled is None
                   else "\t".join(task.headerless_labelled))
    record = {
        "task": task.name,
        "seed": seed,
        "selection_fraction": fraction,
        "sources": {"train": {"file": train.path.name, "sha256": train.sha256,
                              "rows": len(train.lines)},
                    "test": {"file": official_dev.path.name, "sha256": official_dev.sha256,
                             "rows": len(official_dev.lines)}},
        "settings": {},
    }
    with staged_dest(Path(dest), force) as staging:
        for setting, rows in drawn.items():
            directory = staging / setting
            directory.mkdir()
            _write(directory / task.tsv_files["train"], train.header,
                   [train.lines[i] for i in rows["train"]])
            _write(directory / task.tsv_files["valid"], train.header,
                   [train.lines[i] for i in rows["valid"]])
            _write(directory / task.tsv_files["test"], test_header, official_dev.lines)
            record["settings"][setting] = {
                "train": _describe(task, train.labels, rows["train"]),
                "valid": _describe(task, train.labels, rows["valid"]),
                "test": _describe(task, official_dev.labels, range(len(official_dev.lines)),
                                  rows_listed=False),
            }
        (staging / "splits.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


def _describe(task, labels, rows, rows_listed: bool = True) -> dict:
    rows = list(rows)
    info = {"examples": len(rows)}
    if task.regression:
        info["mean_score"] = round(float(np.mean([float(labels[i]) for i in rows])), 4)
    else:
        counts = Counter(labels[i] for i in rows)
        info["labels"] = {label: counts.get(label, 0) for label in task.labels}
    if rows_listed:
        info["rows"] = rows
    return info
