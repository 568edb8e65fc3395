"""Scores a checkpoint of ``--task addrop_sentence_prediction`` on splits of prepared GLUE data
(``addrop-evaluate-glue``): the task's metrics where a split has labels, predictions in file
order, the GLUE server's submission files."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import torch

from ..data import glue
from ..errors import AddropError
from .checkpoint import Checkpoint, batches, load_checkpoint, load_split


def evaluate_glue(path, data, splits: Sequence[str], batch_size: int = 32,
                  predictions_dir=None, submission_dir=None, cpu: bool = False) -> Iterator[dict]:
    """One report per split, as it is scored: ``{"split", "examples", metric: percentage, ...,
    "submission"}``; ``predictions_dir``/SPLIT.txt and ``submission_dir``'s GLUE file on request."""
    checkpoint = load_checkpoint(path, data, cpu=cpu)
    if submission_dir:
        glue_task = getattr(checkpoint.task, "glue", None)
        if glue_task is None:
            raise AddropError("--submission-dir needs data prepared for one of the GLUE "
                              "tasks (--glue-task); this checkpoint's task has none")
        if not any(split in glue_task.submissions for split in splits):
            glue.submission_name(glue_task, splits[0])  # raises, naming the allowed splits
    for split in splits:
        yield score_split(checkpoint, split, batch_size, predictions_dir, submission_dir)


def predict(checkpoint: Checkpoint, split: str, batch_size: int):
    """Returns (predictions, targets or None), both in the order of the split's file."""
    model, cfg, task = checkpoint.model, checkpoint.cfg, checkpoint.task
    load_split(checkpoint, split)
    dataset = task.dataset(split)
    head = cfg.criterion.classification_head_name
    regression = bool(cfg.task.regression_target)
    predictions: List[Optional[float]] = [None] * len(dataset)
    targets: List[Optional[float]] = [None] * len(dataset)
    with torch.no_grad():
        for sample in batches(checkpoint, split, batch_size=batch_size, seed=cfg.common.seed):
            logits = model(**sample["net_input"], features_only=True,
                           classification_head_name=head)[0]
            values = logits.view(-1).float() if regression else logits.argmax(-1)
            for k, index in enumerate(sample["id"].tolist()):
                predictions[index] = values[k].item()
                if "target" in sample:
                    targets[index] = sample["target"].view(-1)[k].item()
    has_targets = all(t is not None for t in targets)
    return predictions, (targets if has_targets else None)


def score_split(checkpoint: Checkpoint, split: str, batch_size: int = 32, predictions_dir=None,
                submission_dir=None) -> dict:
    cfg, task = checkpoint.cfg, checkpoint.task
    glue_task = getattr(task, "glue", None)
    submission = None
    if submission_dir and split in glue_task.submissions:
        submission = Path(submission_dir) / glue.submission_name(glue_task, split)
    predictions, targets = predict(checkpoint, split, batch_size)

    regression = bool(cfg.task.regression_target)
    if regression:
        shown = predictions
    else:
        labels = task.label_dictionary
        shown = [labels[p + labels.nspecial] for p in predictions]
    if predictions_dir:
        Path(predictions_dir).mkdir(parents=True, exist_ok=True)
        with open(Path(predictions_dir) / f"{split}.txt", "w", encoding="utf-8") as f:
            f.writelines(f"{value}\n" for value in shown)
    if submission is not None:
        submission.parent.mkdir(parents=True, exist_ok=True)
        glue.write_submission(submission, glue_task, shown)

    report = {"split": split, "examples": len(predictions)}
    if targets is not None:
        names = getattr(task, "metric_names", None) or glue.default_metrics(regression)
        positive = getattr(task, "positive_class", None)
        values = glue.glue_metrics(names, predictions, targets,
                                   positive if positive is not None else 1)
        report.update({name: 100.0 * value for name, value in values.items()})
    if submission is not None:
        report["submission"] = str(submission)
    return report
