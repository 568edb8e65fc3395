"""CoNLL-2003 data without fairseq: reading and writing, tag schemes, subword alignment, scoring.

A sentence is a list of words with one tag per word. Models see subwords; a word's label sits on
its first subword (or on every subword, with continuation pieces turned from B-X into I-X so the
subword sequence stays valid BIO2), and predictions are read back from the first subwords.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from ..errors import AddropError
from .text import numbered_lines, read_lines

# positions that carry no label: <s>, </s>, padding and, by default, non-first subwords
IGNORE_INDEX = -100

DOCSTART = "-DOCSTART-"
_TAG = re.compile(r"^(O|[BI]-\S+)$")

# the label names of the Hugging Face `conll2003` dataset, in the order of its integer ner_tags
HF_CONLL2003_LABELS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")


@dataclass
class TaggedSentence:
    words: List[str]
    tags: List[str]
    path: str = ""
    lines: List[int] = field(default_factory=list)  # source line of each word, for error messages

    def where(self, index: int = 0) -> str:
        line = self.lines[index] if index < len(self.lines) else (self.lines[0] if self.lines else 0)
        return f"{self.path}:{line}"


def read_conll(path, columns: Optional[int] = 4) -> List[TaggedSentence]:
    """Sentences of a CoNLL file: one word a line, the tag in the last column, blank lines between.

    ``columns`` is the exact number of columns each word line must have (CoNLL-2003: word, POS,
    chunk, NER); ``None`` takes the first word line's count and holds every other line to it.
    ``-DOCSTART-`` lines are document boundaries, not words.
    """
    path = Path(path)
    if not path.is_file():
        raise AddropError(f"{path}: no such file")
    sentences: List[TaggedSentence] = []
    current = TaggedSentence([], [], str(path))
    expected, expected_from = columns, None

    def close():
        nonlocal current
        if current.words:
            sentences.append(current)
        current = TaggedSentence([], [], str(path))

    for number, line in numbered_lines(path):
        fields = line.split()
        if not fields:
            close()
            continue
        if fields[0] == DOCSTART:
            close()
            continue
        if expected is None:
            expected, expected_from = len(fields), number
            if expected < 2:
                raise AddropError(f"{path}:{number}: expected at least 2 columns (word ... tag), "
                                  f"found 1: {line.rstrip()!r}")
        if len(fields) != expected:
            origin = f"as on line {expected_from}" if expected_from else "(--columns)"
            raise AddropError(f"{path}:{number}: expected {expected} columns {origin}, found "
                              f"{len(fields)}: {line.rstrip()!r}")
        tag = fields[-1]
        if not _TAG.match(tag):
            raise AddropError(f"{path}:{number}: tag {tag!r} is not IOB1/BIO2 "
                              "(expected O, B-TYPE or I-TYPE)")
        current.words.append(fields[0])
        current.tags.append(tag)
        current.lines.append(number)
    close()
    if not sentences:
        raise AddropError(f"{path}: no sentences (an empty split)")
    return sentences


def read_hf_dump(path, label_names: Sequence[str] = HF_CONLL2003_LABELS) -> List[TaggedSentence]:
    """A Hugging Face ``conll2003`` split saved with ``Dataset.to_json`` (one JSON object a line,
    ``tokens`` and ``ner_tags``; integer tags are indices into ``label_names``)."""
    path = Path(path)
    if not path.is_file():
        raise AddropError(f"{path}: no such file")
    sentences = []
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            words, raw_tags = record["tokens"], record["ner_tags"]
        except (ValueError, KeyError, TypeError) as error:
            raise AddropError(f"{path}:{number}: expected a JSON object with 'tokens' and "
                              f"'ner_tags' ({type(error).__name__}: {error})") from None
        if not (isinstance(words, list) and isinstance(raw_tags, list)):
            raise AddropError(f"{path}:{number}: 'tokens' and 'ner_tags' must be JSON lists")
        if len(words) != len(raw_tags):
            raise AddropError(f"{path}:{number}: {len(words)} tokens but {len(raw_tags)} ner_tags")
        tags = []
        for tag in raw_tags:
            if isinstance(tag, int):
                if not 0 <= tag < len(label_names):
                    raise AddropError(f"{path}:{number}: ner_tag {tag} is outside the "
                                      f"{len(label_names)} label names {list(label_names)}")
                tag = label_names[tag]
            if not isinstance(tag, str) or not _TAG.match(tag):
                raise AddropError(f"{path}:{number}: tag {tag!r} is not IOB1/BIO2 "
                                  "(expected O, B-TYPE or I-TYPE)")
            tags.append(tag)
        for word in words:
            if not isinstance(word, str) or not word or any(c.isspace() for c in word):
                raise AddropError(f"{path}:{number}: token {word!r} is empty or has whitespace")
        if words:
            sentences.append(TaggedSentence(list(words), tags, str(path), [number] * len(words)))
    if not sentences:
        raise AddropError(f"{path}: no sentences (an empty split)")
    return sentences


def iob1_to_bio2(tags: Sequence[str]) -> List[str]:
    """IOB1 (original CoNLL-2003: I-X opens an entity unless it follows another X) to BIO2.

    BIO2 input comes back unchanged, so the conversion is safe to apply to either scheme.
    """
    out, previous = [], "O"
    for tag in tags:
        if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
            out.append("B-" + tag[2:])
        else:
            out.append(tag)
        previous = tag
    return out


def write_conll(path, rows: Iterable[Sequence[Sequence[str]]]) -> None:
    """Each item of ``rows`` is a sentence: a list of rows of columns, written space-separated."""
    with open(path, "w", encoding="utf-8") as f:
        for sentence in rows:
            for row in sentence:
                f.write(" ".join(row) + "\n")
            f.write("\n")


def word_starts(pieces: torch.Tensor) -> torch.Tensor:
    """Boolean mask over the subwords of a sentence: True at each word's first subword."""
    starts = torch.zeros(int(pieces.sum()), dtype=torch.bool)
    starts[torch.cumsum(pieces, 0) - pieces] = True
    return starts


def align_labels(pieces: torch.Tensor, labels: torch.Tensor, label_all_subwords: bool = False,
                 continuation: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Word labels -> one target per subword.

    ``pieces[i]`` is the number of subwords of word ``i`` (at least 1) and ``labels[i]`` its class.
    By default only first subwords are labelled (the rest get IGNORE_INDEX). With
    ``label_all_subwords`` every subword is labelled, continuation pieces through
    ``continuation[label]`` (the I- class of a B- class), as the paper's code did.
    """
    if pieces.numel() != labels.numel():
        raise ValueError(f"{pieces.numel()} words but {labels.numel()} labels")
    if pieces.numel() and int(pieces.min()) < 1:
        raise ValueError("every word needs at least one subword")
    starts = word_starts(pieces)
    if label_all_subwords:
        target = torch.repeat_interleave(labels.long(), pieces.long())
        if continuation is not None:
            target = torch.where(starts, target, continuation[target])
        return target
    target = torch.full((starts.numel(),), IGNORE_INDEX, dtype=torch.long)
    target[starts] = labels.long()
    return target


def continuation_labels(label_names: Sequence[str]) -> torch.Tensor:
    """For each class, the class of a word's later subwords: I-X for B-X where I-X exists."""
    index = {name: i for i, name in enumerate(label_names)}
    return torch.tensor([index.get("I-" + name[2:], i) if name.startswith("B-") else i
                         for i, name in enumerate(label_names)], dtype=torch.long)


def entity_counts(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> Dict[str, int]:
    """Sufficient statistics of seqeval's entity-level micro scores, additive over sentences.

    seqeval joins sentences with an 'O' between them, so no entity crosses a sentence boundary
    and the counts of a corpus are the sums of its sentences' counts: validation can add them up
    batch by batch (and across workers) and still report exactly seqeval's precision/recall/F1.
    """
    from seqeval.metrics.sequence_labeling import get_entities

    counts = {"tp": 0, "pred": 0, "gold": 0, "words": 0, "words_correct": 0}
    for gold_tags, pred_tags in zip(gold, predicted):
        if len(gold_tags) != len(pred_tags):
            raise ValueError(f"{len(gold_tags)} gold tags but {len(pred_tags)} predicted")
        gold_entities = set(get_entities(list(gold_tags)))
        pred_entities = set(get_entities(list(pred_tags)))
        counts["tp"] += len(gold_entities & pred_entities)
        counts["pred"] += len(pred_entities)
        counts["gold"] += len(gold_entities)
        counts["words"] += len(gold_tags)
        counts["words_correct"] += sum(g == p for g, p in zip(gold_tags, pred_tags))
    return counts


def precision_recall_f1(tp: float, pred: float, gold: float) -> Tuple[float, float, float]:
    """Fractions, 0 where undefined, as seqeval reports them."""
    precision = tp / pred if pred else 0.0
    recall = tp / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def first_sentences(source, dest, count: int) -> int:
    """Copies the first ``count`` sentences of a CoNLL file (their lines as they are, every column,
    ``-DOCSTART-`` lines left out) to ``dest``; returns how many were copied.

    The training subsets of the small-data experiments ("the first 200 training sentences").
    """
    if count < 1:
        raise AddropError(f"sentence count {count}: must be at least 1")
    sentences = read_conll(source, columns=None)[:count]
    lines = read_lines(source)
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "w", encoding="utf-8") as out:
        for sentence in sentences:
            out.write("".join(lines[number - 1] + "\n" for number in sentence.lines) + "\n")
    return len(sentences)
