"""addrop-prepare-conll2003: round trips, subword alignment with real tokenizers, errors."""
import json
from pathlib import Path

import pytest
import sentencepiece as spm
from fairseq.data import Dictionary, data_utils

from addrop_fairseq.errors import AddropError
from conftest import run_cli
from addrop_fairseq.data.ner import read_conll
from test_ner_fixtures import (
    load_script,
    make_sentences,
    prepare,
    tagging_setup,
    write_conll2003,
    write_corpus,
)

# words the training data never shows: accents, CJK, an emoji, digits and punctuation
UNSEEN = [("Zürich", "B-LOC"), ("naïve", "O"), ("東京", "B-LOC"), ("🙂", "O"), ("1996-08-22", "O"),
          ("O'Neill", "B-PER"), ("Jean-Pierre", "I-PER")]


def read_split(dest: Path, split: str):
    """(subword ids, pieces per word, label names) of every sentence, from the binarized files."""
    def load(kind):
        return data_utils.load_indexed_dataset(str(dest / kind / split), None, dataset_impl="mmap")

    labels = Dictionary.load(str(dest / "label" / "dict.txt"))
    tokens, pieces, label_ids = load("input"), load("pieces"), load("label")
    return [(tokens[i].tolist(), pieces[i].tolist(), [labels[j] for j in label_ids[i].tolist()])
            for i in range(len(tokens))]


def words_of(ids, pieces, dictionary):
    """Subword strings of each word."""
    out, start = [], 0
    for count in pieces:
        out.append([dictionary[i] for i in ids[start:start + count]])
        start += count
    return out


@pytest.fixture
def corpus(tmp_path):
    source = write_corpus(tmp_path / "conll")
    test = make_sentences(10, seed=11) + [UNSEEN]
    write_conll2003(source / "test.txt", test)  # IOB1 on disk, like the original files
    return source, test


def test_sentencepiece_round_trip_recovers_words_and_labels_exactly(tmp_path, corpus):
    source, expected = corpus
    dest = prepare(source, tmp_path / "data", "--vocab-size", "400")
    dictionary = Dictionary.load(str(dest / "input" / "dict.txt"))
    processor = spm.SentencePieceProcessor(model_file=str(dest / "spm.model"))
    sentences = read_split(dest, "test")
    assert len(sentences) == len(expected)
    multi = 0
    for (ids, pieces, labels), gold in zip(sentences, expected):
        assert labels == [t for _, t in gold]  # IOB1 on disk -> BIO2 labels
        words = [processor.decode_pieces(p) for p in words_of(ids, pieces, dictionary)]
        assert words == [w for w, _ in gold]
        multi += sum(p > 1 for p in pieces)
        assert dictionary.unk() not in ids  # byte fallback: nothing is unknown
    assert multi > 20, "the test needs words split into several subwords"
    raw = read_conll(dest / "raw" / "test.conll", columns=2)
    assert [list(zip(s.words, s.tags)) for s in raw] == expected
    assert json.loads((dest / "tokenizer.json").read_text()) == {"kind": "sentencepiece",
                                                                 "model": "spm.model"}


def test_whitespace_tokenizer_keeps_words_and_maps_rare_ones_to_unk(tmp_path, corpus):
    source, expected = corpus
    dest = prepare(source, tmp_path / "data", "--tokenizer", "whitespace", "--min-count", "2")
    dictionary = Dictionary.load(str(dest / "input" / "dict.txt"))
    for (ids, pieces, labels), gold in zip(read_split(dest, "test"), expected):
        assert pieces == [1] * len(gold) and labels == [t for _, t in gold]
        for token, (word, _) in zip(ids, gold):
            assert dictionary[token] == word or (token == dictionary.unk() and word in dict(UNSEEN))


def wordpiece_tokenizer(directory: Path) -> Path:
    from transformers import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "peter", "black", "##burn", "said", "in",
             "bru", "##ss", "##els", "the", "eu", "rejects", "german", "call", "."]
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(directory)
    return directory


def test_huggingface_wordpiece_alignment_with_the_checkpoint_dictionary(tmp_path):
    source = tmp_path / "conll"
    source.mkdir()
    sentence = [("Peter", "B-PER"), ("Blackburn", "I-PER"), ("said", "O"), ("in", "O"),
                ("Brussels", "B-LOC"), ("Xyzzy", "O"), (".", "O")]
    for split in ("train", "valid", "test"):
        write_conll2003(source / f"{split}.txt", [sentence], iob1=False)
    tokenizer = wordpiece_tokenizer(tmp_path / "hf")
    # a converted checkpoint's dictionary lists the token strings, in its own order
    dict_file = tmp_path / "dict.txt"
    dict_file.write_text("".join(f"{w} 1\n" for w in
                                 [".", "##els", "##ss", "bru", "in", "said", "##burn", "black", "peter"]))
    dest = prepare(source, tmp_path / "data", "--tokenizer", "huggingface", "--hf-tokenizer",
                   str(tokenizer), "--dict", str(dict_file))
    dictionary = Dictionary.load(str(dest / "input" / "dict.txt"))
    [(ids, pieces, labels)] = read_split(dest, "test")
    assert pieces == [1, 2, 1, 1, 3, 1, 1]
    assert words_of(ids, pieces, dictionary) == [
        ["peter"], ["black", "##burn"], ["said"], ["in"], ["bru", "##ss", "##els"], ["<unk>"], ["."]]
    assert labels == ["B-PER", "I-PER", "O", "O", "B-LOC", "O", "O"]


def test_huggingface_ids_map_through_a_numeric_dictionary(tmp_path):
    source = tmp_path / "conll"
    source.mkdir()
    sentence = [("Blackburn", "B-PER"), ("said", "O")]
    for split in ("train", "valid"):
        write_conll2003(source / f"{split}.txt", [sentence], iob1=False)
    tokenizer = wordpiece_tokenizer(tmp_path / "hf")
    # RoBERTa's dict.txt style: symbols are the tokenizer's ids (black=6, ##burn=7, said=8)
    dict_file = tmp_path / "dict.txt"
    dict_file.write_text("8 5\n7 3\n6 2\n")
    dest = prepare(source, tmp_path / "data", "--tokenizer", "huggingface", "--hf-tokenizer",
                   str(tokenizer), "--dict", str(dict_file))
    dictionary = Dictionary.load(str(dest / "input" / "dict.txt"))
    [(ids, pieces, _)] = read_split(dest, "valid")
    assert pieces == [2, 1]
    assert [dictionary[i] for i in ids] == ["6", "7", "8"]


def test_unknown_label_at_test_time_names_file_and_line(tmp_path):
    source = write_corpus(tmp_path / "conll")
    lines = (source / "test.txt").read_text().splitlines()
    number = next(i for i, line in enumerate(lines, 1) 
                  if line.endswith(" O") and not line.startswith("-DOCSTART-"))
    lines[number - 1] = lines[number - 1][:-1] + "I-MISC"
    (source / "test.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(AddropError, match=rf"test.txt:{number}: label 'B-MISC' of the test split "
                                         "never occurs in training"):
        prepare(source, tmp_path / "data", "--vocab-size", "400")


def test_wrong_column_count_and_empty_split_are_one_line_errors(tmp_path):
    source = write_corpus(tmp_path / "conll")
    with open(source / "valid.txt", "a") as f:
        f.write("Berlin B-LOC\n")
    count = len((source / "valid.txt").read_text().splitlines())
    with pytest.raises(AddropError, match=rf"valid.txt:{count}: expected 4 columns .*found 2"):
        prepare(source, tmp_path / "data")
    (source / "valid.txt").write_text("-DOCSTART- -X- -X- O\n\n")
    with pytest.raises(AddropError, match=r"valid.txt: no sentences \(an empty split\)"):
        prepare(source, tmp_path / "data")


def test_hugging_face_dump_prepares_like_the_conll_files(tmp_path):
    sentences = make_sentences(30, seed=4)
    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    dump = tmp_path / "hf"
    dump.mkdir()
    for split in ("train", "validation", "test"):
        with open(dump / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for number, sentence in enumerate(sentences):
                f.write(json.dumps({"id": str(number), "tokens": [w for w, _ in sentence],
                                    "ner_tags": [names.index(t) for _, t in sentence]}) + "\n")
    dest = tmp_path / "data"
    load_script("prepare_conll2003").main(["--hf-dump", str(dump), "--dest", str(dest),
                                           "--tokenizer", "whitespace", "--min-count", "1"])
    for split in ("train", "valid", "test"):
        assert [labels for _, _, labels in read_split(dest, split)] == \
            [[t for _, t in s] for s in sentences]


def test_the_task_names_missing_data(tmp_path):
    (tmp_path / "input").mkdir()
    with pytest.raises(AddropError, match=r"missing .*input/dict.txt \(prepare the data with "
                                          r"addrop-prepare-conll2003\)"):
        tagging_setup(tmp_path)


def test_bom_non_utf8_and_unicode_separators_in_conll_files(tmp_path):
    path = tmp_path / "train.txt"
    # the BOM of a file saved by a Windows editor, before -DOCSTART- or before the first word
    path.write_bytes("\ufeff-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n".encode())
    [sentence] = read_conll(path)
    assert sentence.words == ["EU", "rejects"]
    path.write_bytes("\ufeffEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n".encode())
    assert read_conll(path)[0].words == ["EU", "rejects"]
    # U+2028 and U+0085 are whitespace inside a line, not line ends: line numbers stay wc -l's
    path.write_bytes("EU NNP\u2028B-NP B-ORG\nrejects\x85 VBZ B-VP O\nbad\n".encode())
    with pytest.raises(AddropError, match=r"train.txt:3: expected 4 columns"):
        read_conll(path)
    path.write_bytes(b"EU NNP B-NP B-ORG\nM\xfcnchen NNP B-NP B-LOC\n")
    with pytest.raises(AddropError, match=r"train.txt:2: not UTF-8 \(byte 0xfc at column 2\)$"):
        read_conll(path)


def test_rerun_needs_force_and_leaves_no_stale_split(tmp_path):
    source = write_corpus(tmp_path / "conll")
    dest = prepare(source, tmp_path / "data", "--tokenizer", "whitespace")
    assert (dest / "input" / "test.bin").is_file()
    script = load_script("prepare_conll2003")
    rerun = ["--train", str(source / "train.txt"), "--valid", str(source / "valid.txt"),
             "--dest", str(dest), "--tokenizer", "whitespace", "--min-count", "1"]
    with pytest.raises(AddropError, match=rf"^--dest {dest} exists and is not empty; pass --force"):
        script.main(rerun)
    assert (dest / "input" / "test.bin").is_file()
    script.main(rerun + ["--force"])
    # the new dictionaries (min count 1) come without the first run's test split
    assert sorted(p.name for p in dest.rglob("test*")) == []
    assert (dest / "input" / "valid.bin").is_file() and (dest / "raw" / "valid.conll").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conll", "data"]


@pytest.mark.parametrize("value", ["1", "-2", "x"])
def test_impossible_column_counts_are_refused_at_parse_time(tmp_path, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        load_script("prepare_conll2003").main(["--conll-dir", str(tmp_path), "--dest",
                                               str(tmp_path / "d"), "--columns", value])
    assert exit_.value.code == 2
    assert "argument --columns" in capsys.readouterr().err


def test_a_bad_spm_model_is_named_as_given(tmp_path):
    source = write_corpus(tmp_path / "conll", train=20, valid=5, test=5)
    (tmp_path / "bad.model").write_text("not a model")
    with pytest.raises(AddropError, match=rf"^--spm-model {tmp_path / 'bad.model'}: not a "
                                          r"sentencepiece model \(.+\)$"):
        prepare(source, tmp_path / "data", "--spm-model", str(tmp_path / "bad.model"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.model", "conll"]
