"""Tags a prepared split with a checkpoint of ``--task addrop_tagging`` and scores it with
seqeval (``addrop-evaluate-ner``): entity-level, CoNLL convention."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch

from ..data.ner import read_conll, write_conll
from ..errors import AddropError
from .checkpoint import Checkpoint, batches, check_inputs, load_checkpoint


@dataclass
class NerScores:
    sentences: int
    report: str  # seqeval's per-type report
    scores: str  # "precision P | recall R | f1 F", percentages

    def __str__(self) -> str:
        return self.report + "\n" + self.scores + "\n"


def evaluate_ner(path, data, split: str, output_dir: Path, max_tokens: Optional[int] = 8000,
                 batch_size: Optional[int] = None, cpu: bool = False) -> NerScores:
    """Writes OUTPUT_DIR/SPLIT.pred.conll ("word gold predicted" per line, blank line between
    sentences, the format conlleval reads) and OUTPUT_DIR/SPLIT.report.txt; returns the scores."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    check_inputs(path, data)
    raw = Path(data) / "raw" / f"{split}.conll"
    sentences = read_conll(raw, columns=2)
    checkpoint = load_checkpoint(path, data, [split], cpu)
    predictions = predict(checkpoint, split, max_tokens, batch_size)

    if len(predictions) != len(sentences):
        raise AddropError(f"{raw} has {len(sentences)} sentences but the binarized {split} split "
                          f"has {len(predictions)}: prepare the data again")
    gold, predicted, rows = [], [], []
    for index, sentence in enumerate(sentences):
        labels = predictions[index]
        if len(labels) != len(sentence.words):
            raise AddropError(f"{sentence.where()}: {len(sentence.words)} words but {len(labels)} "
                              "predictions: prepare the data again")
        gold.append(sentence.tags)
        predicted.append(labels)
        rows.append(list(zip(sentence.words, sentence.tags, labels)))

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_conll(output_dir / f"{split}.pred.conll", rows)
    result = NerScores(
        len(sentences), classification_report(gold, predicted, digits=4),
        f"precision {100 * precision_score(gold, predicted):.2f} | recall "
        f"{100 * recall_score(gold, predicted):.2f} | f1 {100 * f1_score(gold, predicted):.2f}")
    (output_dir / f"{split}.report.txt").write_text(str(result), encoding="utf-8")
    return result


def predict(checkpoint: Checkpoint, split: str, max_tokens: Optional[int],
            batch_size: Optional[int]) -> Dict[int, List[str]]:
    """Sentence index -> predicted labels of its words."""
    task, model = checkpoint.task, checkpoint.model
    predictions = {}
    with torch.no_grad():
        for sample in batches(checkpoint, split, max_tokens, batch_size):
            logits = model(**sample["net_input"])[0]
            words = task.word_predictions(logits.argmax(-1).cpu(), sample)
            for sentence_id, labels in zip(sample["id"].tolist(), words):
                predictions[sentence_id] = labels
    return predictions
