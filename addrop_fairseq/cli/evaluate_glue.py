"""Scores a checkpoint of ``--task addrop_sentence_prediction`` on splits of prepared GLUE data.

Prints one JSON line per split with the task's metrics (percentages, as in the training log)
when the split has labels, and writes, on request, one prediction per example in file order
(``--predictions-dir DIR``: DIR/SPLIT.txt) or the GLUE server's submission file of the split
(``--submission-dir DIR``: e.g. RTE.tsv for test; MNLI-m.tsv for test and MNLI-mm.tsv for test1).

    addrop-evaluate-glue --data DATA --path checkpoints/checkpoint_best.pt --split valid
    addrop-evaluate-glue --data DATA --path checkpoints/checkpoint_best.pt \\
        --split test,test1 --submission-dir submission
"""
import argparse
import json
import sys
from pathlib import Path

import torch

from addrop_fairseq.data import glue
from addrop_fairseq.errors import AddropError
from addrop_fairseq.cli.policy import run


def load(path: str, data: str, cpu: bool):
    from fairseq import checkpoint_utils
    if not Path(path).is_file():
        raise AddropError(f"--path {path}: no such checkpoint")
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [path], arg_overrides={"data": data})
    model = models[0]
    model.eval()
    if torch.cuda.is_available() and not cpu:
        model.cuda()
    return model, cfg, task


def predict(model, cfg, task, split: str, batch_size: int):
    """Returns (predictions, targets or None), both in the order of the split's file."""
    from fairseq import utils

    try:
        task.load_dataset(split)
    except (FileNotFoundError, AssertionError) as e:
        raise AddropError(f"cannot load split {split!r} from {cfg.task.data} ({e})")
    dataset = task.dataset(split)
    iterator = task.get_batch_iterator(
        dataset=dataset, max_sentences=batch_size,
        max_positions=utils.resolve_max_positions(task.max_positions(), model.max_positions()),
        ignore_invalid_inputs=False, seed=cfg.common.seed, num_workers=0,
    ).next_epoch_itr(shuffle=False)
    head = cfg.criterion.classification_head_name
    regression = bool(cfg.task.regression_target)
    predictions, targets = [None] * len(dataset), [None] * len(dataset)
    device = next(model.parameters()).device
    with torch.no_grad():
        for sample in iterator:
            sample = utils.move_to_cuda(sample, device=device) if device.type == "cuda" else sample
            logits = model(**sample["net_input"], features_only=True,
                           classification_head_name=head)[0]
            values = logits.view(-1).float() if regression else logits.argmax(-1)
            for k, index in enumerate(sample["id"].tolist()):
                predictions[index] = values[k].item()
                if "target" in sample:
                    targets[index] = sample["target"].view(-1)[k].item()
    has_targets = all(t is not None for t in targets)
    return predictions, (targets if has_targets else None)


def score_split(model, cfg, task, split: str, args) -> dict:
    glue_task = getattr(task, "glue", None)
    submission = None
    if args.submission_dir and split in glue_task.submissions:
        submission = Path(args.submission_dir) / glue.submission_name(glue_task, split)
    predictions, targets = predict(model, cfg, task, split, args.batch_size)

    regression = bool(cfg.task.regression_target)
    if regression:
        shown = predictions
    else:
        labels = task.label_dictionary
        shown = [labels[p + labels.nspecial] for p in predictions]
    if args.predictions_dir:
        Path(args.predictions_dir).mkdir(parents=True, exist_ok=True)
        with open(Path(args.predictions_dir) / f"{split}.txt", "w", encoding="utf-8") as f:
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the directory prepare_glue.py wrote")
    parser.add_argument("--path", required=True, help="checkpoint file")
    parser.add_argument("--split", default="valid", help="comma-separated fairseq splits: valid, "
                        "valid1, test, test1 (MNLI: 1 = mismatched); one JSON line each")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--predictions-dir", help="write DIR/SPLIT.txt: one prediction per "
                        "line (label or score), in the order of the split's file")
    parser.add_argument("--submission-dir", help="write the GLUE submission file of each split")
    parser.add_argument("--cpu", action="store_true")
    args = parser.parse_args(argv)

    try:
        model, cfg, task = load(args.path, args.data, args.cpu)
        splits = args.split.split(",")
        if args.submission_dir:
            glue_task = getattr(task, "glue", None)
            if glue_task is None:
                raise AddropError("--submission-dir needs data prepared for one of the GLUE "
                                  "tasks (--glue-task); this checkpoint's task has none")
            if not any(split in glue_task.submissions for split in splits):
                glue.submission_name(glue_task, splits[0])  # raises, naming the allowed splits
        for split in splits:
            print(json.dumps(score_split(model, cfg, task, split, args)), flush=True)
    except AddropError as e:
        sys.exit(f"evaluate_glue: error: {e}")


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()
