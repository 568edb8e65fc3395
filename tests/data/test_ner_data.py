"""CoNLL reading, IOB1 -> BIO2, label alignment and the entity metric (no fairseq models here)."""
import random

import pytest
import torch
from seqeval.metrics import f1_score, precision_score, recall_score

from addrop_fairseq.errors import AddropError
from addrop_fairseq.data.ner import (
    IGNORE_INDEX,
    align_labels,
    continuation_labels,
    entity_counts,
    iob1_to_bio2,
    precision_recall_f1,
    read_conll,
    read_hf_dump,
    word_starts,
)
from test_ner_fixtures import make_sentences, to_iob1, write_conll2003


def test_reads_the_original_layout_skipping_docstart_and_blank_lines(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP I-ORG\nrejects VBZ B-VP O\n\n\n"
                    "Peter NNP B-NP I-PER\nBlackburn NNP I-NP I-PER\n-DOCSTART- -X- -X- O\n"
                    "BRUSSELS NNP B-NP I-LOC\n", encoding="utf-8")
    sentences = read_conll(path)
    assert [s.words for s in sentences] == [["EU", "rejects"], ["Peter", "Blackburn"], ["BRUSSELS"]]
    assert [s.tags for s in sentences] == [["I-ORG", "O"], ["I-PER", "I-PER"], ["I-LOC"]]
    assert sentences[1].lines == [7, 8] and sentences[1].where(1) == f"{path}:8"


def test_wrong_column_count_names_file_and_line(tmp_path):
    path = tmp_path / "valid.txt"
    path.write_text("EU NNP B-NP B-ORG\nrejects VBZ O\n", encoding="utf-8")
    with pytest.raises(AddropError, match=rf"{path}:2: expected 4 columns .*found 3"):
        read_conll(path)
    # any consistent count is accepted when asked, held to the first line
    path.write_text("EU B-ORG\nrejects O\n\nPeter B-PER O\n", encoding="utf-8")
    with pytest.raises(AddropError, match=rf"{path}:4: expected 2 columns as on line 1, found 3"):
        read_conll(path, columns=None)


def test_bad_tag_and_empty_split_are_named(tmp_path):
    path = tmp_path / "test.txt"
    path.write_text("EU NNP B-NP S-ORG\n", encoding="utf-8")
    with pytest.raises(AddropError, match=rf"{path}:1: tag 'S-ORG' is not IOB1/BIO2"):
        read_conll(path)
    path.write_text("-DOCSTART- -X- -X- O\n\n\n", encoding="utf-8")
    with pytest.raises(AddropError, match=rf"{path}: no sentences"):
        read_conll(path)


def test_iob1_to_bio2_known_cases():
    assert iob1_to_bio2(["I-PER", "I-PER", "O", "I-LOC"]) == ["B-PER", "I-PER", "O", "B-LOC"]
    # B- in IOB1 separates two adjacent entities of one type; a type change opens a new entity
    assert iob1_to_bio2(["I-PER", "B-PER", "I-PER", "I-ORG"]) == ["B-PER", "B-PER", "I-PER", "B-ORG"]
    assert iob1_to_bio2([]) == []


def test_iob1_to_bio2_inverts_the_iob1_encoding_and_keeps_bio2():
    for sentence in make_sentences(200, seed=5):
        bio2 = [t for _, t in sentence]
        assert iob1_to_bio2(to_iob1(bio2)) == bio2
        assert iob1_to_bio2(bio2) == bio2


def test_hf_dump_maps_integer_tags_and_checks_lengths(tmp_path):
    path = tmp_path / "validation.jsonl"
    path.write_text('{"id": "0", "tokens": ["EU", "rejects", "German"], "ner_tags": [3, 0, 7]}\n'
                    '{"id": "1", "tokens": ["Peter"], "ner_tags": [1]}\n', encoding="utf-8")
    sentences = read_hf_dump(path)
    assert [s.tags for s in sentences] == [["B-ORG", "O", "B-MISC"], ["B-PER"]]
    path.write_text('{"tokens": ["EU", "rejects"], "ner_tags": [3]}\n', encoding="utf-8")
    with pytest.raises(AddropError, match=rf"{path}:1: 2 tokens but 1 ner_tags"):
        read_hf_dump(path)
    path.write_text('{"tokens": ["EU"], "ner_tags": [9]}\n', encoding="utf-8")
    with pytest.raises(AddropError, match=rf"{path}:1: ner_tag 9 is outside"):
        read_hf_dump(path)


def test_first_subword_labelling_with_multi_subword_words():
    # words: "Blackburn" -> 3 pieces, "said" -> 1, "Brussels" -> 2
    pieces = torch.tensor([3, 1, 2])
    labels = torch.tensor([2, 0, 5])
    assert word_starts(pieces).tolist() == [True, False, False, True, True, False]
    expected = [2, IGNORE_INDEX, IGNORE_INDEX, 0, 5, IGNORE_INDEX]
    assert align_labels(pieces, labels).tolist() == expected


def test_every_subword_labelling_turns_b_into_i_on_continuations():
    names = ["O", "B-PER", "I-PER", "B-MISC"]  # no I-MISC: B-MISC continues as itself
    continuation = continuation_labels(names)
    assert continuation.tolist() == [0, 2, 2, 3]
    pieces = torch.tensor([2, 3, 1, 2])
    labels = torch.tensor([1, 2, 0, 3])
    target = align_labels(pieces, labels, label_all_subwords=True, continuation=continuation)
    assert [names[c] for c in target.tolist()] == [
        "B-PER", "I-PER", "I-PER", "I-PER", "I-PER", "O", "B-MISC", "B-MISC"]


def test_alignment_rejects_inconsistent_input():
    with pytest.raises(ValueError, match="2 words but 3 labels"):
        align_labels(torch.tensor([1, 1]), torch.tensor([0, 0, 0]))
    with pytest.raises(ValueError, match="at least one subword"):
        align_labels(torch.tensor([1, 0]), torch.tensor([0, 0]))


KNOWN_GOLD = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG", "O", "B-MISC"],
              ["O", "O"], ["B-LOC", "B-LOC", "I-LOC"]]
KNOWN_PRED = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "I-ORG", "O", "O", "I-MISC"],
              ["O", "B-PER"], ["B-LOC", "I-LOC", "I-LOC"]]


def test_metric_equals_seqeval_on_known_predictions():
    counts = entity_counts(KNOWN_GOLD, KNOWN_PRED)
    # by hand: gold PER LOC ORG MISC LOC LOC = 6; predicted PER ORG ORG(0-1) MISC(I- opens one)
    # PER LOC(0-2) = 6; correct: PER, MISC = 2
    assert (counts["tp"], counts["pred"], counts["gold"]) == (2, 6, 6)
    p, r, f = precision_recall_f1(counts["tp"], counts["pred"], counts["gold"])
    assert p == pytest.approx(precision_score(KNOWN_GOLD, KNOWN_PRED), abs=1e-12)
    assert r == pytest.approx(recall_score(KNOWN_GOLD, KNOWN_PRED), abs=1e-12)
    assert f == pytest.approx(f1_score(KNOWN_GOLD, KNOWN_PRED), abs=1e-12)
    assert counts["words"] == 14 and counts["words_correct"] == 9


def test_counts_add_up_over_batches_to_seqeval_on_the_corpus():
    rng = random.Random(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    gold = [[t for _, t in s] for s in make_sentences(300, seed=7)]
    # noisy predictions, including invalid sequences (I- after O) seqeval must interpret
    pred = [[t if rng.random() < 0.8 else rng.choice(tags) for t in sentence] for sentence in gold]
    totals = {"tp": 0, "pred": 0, "gold": 0}
    for start in range(0, len(gold), 37):
        counts = entity_counts(gold[start:start + 37], pred[start:start + 37])
        for key in totals:
            totals[key] += counts[key]
    _, _, f = precision_recall_f1(totals["tp"], totals["pred"], totals["gold"])
    assert 0.3 < f < 0.95
    assert f == pytest.approx(f1_score(gold, pred), abs=1e-12)


def test_undefined_scores_are_zero_like_seqeval():
    assert precision_recall_f1(0, 0, 5) == (0.0, 0.0, 0.0)
    assert precision_recall_f1(0, 3, 0) == (0.0, 0.0, 0.0)


def test_fixture_writer_produces_what_the_reader_reads(tmp_path):
    sentences = make_sentences(20, seed=3)
    write_conll2003(tmp_path / "x.txt", sentences, iob1=False)
    read = read_conll(tmp_path / "x.txt")
    assert [list(zip(s.words, s.tags)) for s in read] == sentences


def test_first_sentences_copies_lines_unchanged_without_docstart(tmp_path):
    from addrop_fairseq.data.ner import first_sentences

    source = tmp_path / "train.txt"
    source.write_bytes("\ufeff-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
                       "Peter NNP B-NP B-PER\n\n-DOCSTART- -X- -X- O\n\nBonn NNP B-NP I-LOC\n"
                       .encode("utf-8"))
    assert first_sentences(source, tmp_path / "two.txt", 2) == 2
    assert (tmp_path / "two.txt").read_text(encoding="utf-8") == \
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n\n"
    assert first_sentences(source, tmp_path / "all.txt", 10) == 3
    with pytest.raises(AddropError, match="sentence count 0"):
        first_sentences(source, tmp_path / "none.txt", 0)
