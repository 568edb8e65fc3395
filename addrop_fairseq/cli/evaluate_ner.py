"""Tag a prepared split with a checkpoint; write CoNLL predictions and seqeval's report.

    addrop-evaluate-ner --data DATA --path checkpoints/checkpoint_best.pt --split test \
        --output-dir results/

writes OUTPUT/SPLIT.pred.conll ("word gold predicted" per line, blank line between sentences, the
format conlleval reads) and OUTPUT/SPLIT.report.txt (seqeval's per-type report, entity-level,
CoNLL convention), and prints precision/recall/F1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import addrop_fairseq  # noqa: F401  (registers the task, criterion and models)
from addrop_fairseq.errors import AddropError
from addrop_fairseq.data.ner import read_conll, write_conll
from addrop_fairseq.cli.policy import run


def fail(message: str) -> None:
    sys.exit(f"evaluate_ner: error: {message}")


def predict(model, task, split: str, max_tokens: int, max_sentences, device) -> dict:
    """Sentence index -> predicted labels of its words."""
    dataset = task.dataset(split)
    iterator = task.get_batch_iterator(
        dataset=dataset, max_tokens=max_tokens, max_sentences=max_sentences,
        max_positions=task.max_positions(), ignore_invalid_inputs=False, num_workers=0,
    ).next_epoch_itr(shuffle=False)
    predictions = {}
    with torch.no_grad():
        for sample in iterator:
            net_input = {k: v.to(device) for k, v in sample["net_input"].items()}
            logits = model(**net_input)[0]
            words = task.word_predictions(logits.argmax(-1).cpu(), sample)
            for sentence_id, labels in zip(sample["id"].tolist(), words):
                predictions[sentence_id] = labels
    return predictions


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="directory from prepare_conll2003.py")
    parser.add_argument("--path", required=True, help="checkpoint of an addrop_tagging run")
    parser.add_argument("--split", default="test")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--max-tokens", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--cpu", action="store_true", help="even where CUDA is available")
    args = parser.parse_args(argv)

    from fairseq import checkpoint_utils
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    if not Path(args.path).is_file():
        fail(f"--path {args.path}: no such checkpoint")
    raw = Path(args.data) / "raw" / f"{args.split}.conll"
    try:
        sentences = read_conll(raw, columns=2)
        models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task(
            [args.path], arg_overrides={"data": args.data})
        task.load_dataset(args.split)
    except AddropError as error:
        fail(str(error))
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    model = models[0].to(device).eval()
    predictions = predict(model, task, args.split, args.max_tokens, args.batch_size, device)

    if len(predictions) != len(sentences):
        fail(f"{raw} has {len(sentences)} sentences but the binarized {args.split} split has "
             f"{len(predictions)}: prepare the data again")
    gold, predicted, rows = [], [], []
    for index, sentence in enumerate(sentences):
        labels = predictions[index]
        if len(labels) != len(sentence.words):
            fail(f"{sentence.where()}: {len(sentence.words)} words but {len(labels)} predictions: "
                 "prepare the data again")
        gold.append(sentence.tags)
        predicted.append(labels)
        rows.append(list(zip(sentence.words, sentence.tags, labels)))

    args.output_dir.mkdir(parents=True, exist_ok=True)
    write_conll(args.output_dir / f"{args.split}.pred.conll", rows)
    report = classification_report(gold, predicted, digits=4)
    scores = (f"precision {100 * precision_score(gold, predicted):.2f} | recall "
              f"{100 * recall_score(gold, predicted):.2f} | f1 {100 * f1_score(gold, predicted):.2f}")
    (args.output_dir / f"{args.split}.report.txt").write_text(report + "\n" + scores + "\n",
                                                              encoding="utf-8")
    print(report)
    print(f"{args.split}: {len(sentences)} sentences | {scores}")


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()
