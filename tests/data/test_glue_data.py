"""GLUE files in, fairseq data out: reading, errors, truncation and addrop-prepare-glue.

The made-up data helpers here are shared by the other test_glue_* files.
"""
import importlib
import json
import random
from pathlib import Path

import pytest

from addrop_fairseq.data import glue
from addrop_fairseq.errors import AddropError
from conftest import run_cli

from conftest import REPO  # noqa: E402


def _load_script(name: str):
    return importlib.import_module(f"addrop_fairseq.cli.{name}")


prepare_glue = _load_script("prepare_glue")

FILLER = ("river mountain forest desert ocean valley island meadow canyon glacier "
          "red blue green yellow purple runs jumps sleeps sings reads").split()
CUE = "golden"  # the made-up tasks are learnable from how often this word occurs
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDPIECES = SPECIALS + FILLER + [CUE, "the", "##s"]


def wordpiece_tokenizer(directory: Path):
    """A BERT WordPiece tokenizer over WORDPIECES, loaded the way transformers 4 and 5 both can."""
    from transformers import BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(WORDPIECES) + "\n", encoding="utf-8")
    return BertTokenizer.from_pretrained(str(directory), local_files_only=True)


def make_tokenizer(dest: Path) -> Path:
    """A tokenizer directory that AutoTokenizer loads, as prepare_glue.py --hf-tokenizer does."""
    wordpiece_tokenizer(dest.parent / f"{dest.name}-vocab").save_pretrained(str(dest))
    return dest


def _sentence(rng, cues: int) -> str:
    words = rng.sample(FILLER, 5) + [CUE] * cues
    rng.shuffle(words)
    return " ".join(words)


def write_mrpc(dest: Path, sizes=(400, 80, 40), seed=0, noise=0.1) -> Path:
    """MRPC-shaped: paraphrase ("1") iff either sentence has the cue word, 10% labels flipped."""
    rng = random.Random(seed)
    dest.mkdir(parents=True, exist_ok=True)
    for name, n in zip(("train.tsv", "dev.tsv", "test.tsv"), sizes):
        header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String" if name != "test.tsv" else \
            "index\t#1 ID\t#2 ID\t#1 String\t#2 String"
        lines = [header]
        for i in range(n):
            a, b = rng.random() < 0.3, rng.random() < 0.3
            label = int(a or b) ^ (rng.random() < noise)
            lead = str(label) if name != "test.tsv" else str(i)
            lines.append(f"{lead}\t{2 * i}\t{2 * i + 1}\t{_sentence(rng, a)}\t{_sentence(rng, b)}")
        (dest / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dest


def write_stsb(dest: Path, sizes=(400, 80, 40), seed=0) -> Path:
    """STS-B-shaped: score = 1.2 x (cue words in both sentences) + uniform noise, in [0, 5]."""
    rng = random.Random(seed)
    dest.mkdir(parents=True, exist_ok=True)
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
    for name, n in zip(("train.tsv", "dev.tsv", "test.tsv"), sizes):
        lines = [header + ("\tscore" if name != "test.tsv" else "")]
        for i in range(n):
            a, b = rng.randint(0, 2), rng.randint(0, 2)
            score = min(5.0, max(0.0, 1.2 * (a + b) + rng.uniform(-0.4, 0.4)))
            row = (f"{i}\tmain-news\tf\t2020\t{i}\tnone\tnone\t{_sentence(rng, a)}\t"
                   f"{_sentence(rng, b)}")
            lines.append(row + (f"\t{score:.3f}" if name != "test.tsv" else ""))
        (dest / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dest


def load_split(data: Path, directory: str, split: str):
    from fairseq.data import Dictionary, data_utils

    dictionary = Dictionary.load(str(data / directory / "dict.txt"))
    return dictionary, data_utils.load_indexed_dataset(str(data / directory / split), dictionary)


# --------------------------------------------------------------------------------------------
# reading GLUE files


def test_every_task_reads_its_glue_tsv_layout(tmp_path):
    """One row per task in the column layout of the GLUE distribution, labels kept as text."""
    layouts = {
        "cola": (None, "gj04\t1\t\tThe sailors rode the breeze clear of the rocks.", ("The sailors rode the breeze clear of the rocks.",), "1"),
        "sst2": ("sentence\tlabel", "a gorgeous film\t1", ("a gorgeous film",), "1"),
        "mrpc": ("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", "0\t1\t2\tHe said \"no\".\tHe refused.", ('He said "no".', "He refused."), "0"),
        "qqp": ("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", "7\t1\t2\tWhy?\tHow?\t0", ("Why?", "How?"), "0"),
        "stsb": ("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore", "0\tg\tf\t2012\t1\ts\ts\tA man.\tA person.\t3.800", ("A man.", "A person."), "3.800"),
        "mnli": ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label", "0\t1\t1e\tgov\tx\ty\tx\ty\tPremise.\tHypothesis.\tneutral\tneutral", ("Premise.", "Hypothesis."), "neutral"),
        "qnli": ("index\tquestion\tsentence\tlabel", "0\tWho?\tNobody.\tnot_entailment", ("Who?", "Nobody."), "not_entailment"),
        "rte": ("index\tsentence1\tsentence2\tlabel", "0\tIt rains.\tIt is wet.\tentailment", ("It rains.", "It is wet."), "entailment"),
    }
    for name, (header, row, texts, label) in layouts.items():
        task = glue.get_task(name)
        directory = tmp_path / name
        directory.mkdir()
        lines = ([header] if header else []) + [row]
        (directory / task.tsv_files["train"]).write_text("\n".join(lines) + "\n", encoding="utf-8")
        [example] = glue.read_split(task, directory, "train")
        assert example.texts == texts and example.label == label, name
        assert example.where.endswith(f":{1 if header is None else 2}")


def test_glue_test_files_have_no_labels_and_mnli_has_matched_and_mismatched(tmp_path):
    task = glue.get_task("MNLI")
    header = "index\tpromptID\tpairID\tgenre\ts1b\ts2b\ts1p\ts2p\tsentence1\tsentence2"
    for split in ("test", "test1"):
        (tmp_path / task.tsv_files[split]).write_text(
            f"{header}\n0\t1\t2\tg\tx\ty\tx\ty\tP {split}.\tH.\n", encoding="utf-8")
    assert glue.read_split(task, tmp_path, "test")[0].texts == ("P test.", "H.")
    assert glue.read_split(task, tmp_path, "test1")[0].label is None
    assert task.tsv_files["valid1"] == "dev_mismatched.tsv"
    assert glue.submission_name(task, "test1") == "MNLI-mm.tsv"


@pytest.mark.parametrize("content, message", [
    ("index\tsentence1\tlabel\n0\ta\tentailment\n", r"rte\.tsv:1: no column 'sentence2'"),
    ("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tmaybe\n",
     r"rte\.tsv:3: unknown RTE label 'maybe'; expected one of entailment, not_entailment"),
    ("index\tsentence1\tsentence2\tlabel\n0\ta\tb\n", r"rte\.tsv:2: 3 tab-separated fields, expected 4"),
    ("index\tsentence1\tsentence2\tlabel\n", r"rte\.tsv: no examples"),
])
def test_bad_tsv_files_name_file_line_and_value(tmp_path, content, message):
    path = tmp_path / "rte.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(AddropError, match=message):
        glue.read_tsv(glue.get_task("rte"), path, "train")


@pytest.mark.parametrize("fmt", ["tsv", "jsonl"])
def test_text_encoding_bom_and_line_ends(tmp_path, fmt):
    task = glue.get_task("rte")
    if fmt == "tsv":
        path, good = tmp_path / "train.tsv", "index\tsentence1\tsentence2\tlabel\n"
        rows = ["0\tIt rains\u2028hard.\tIt is wet.\tentailment\n", "1\tA\rB.\tC.\tnot_entailment\r\n"]
    else:
        path, good = tmp_path / "train.jsonl", ""
        rows = [json.dumps({"sentence1": "It rains\u2028hard.", "sentence2": "It is wet.",
                            "label": 0}, ensure_ascii=False) + "\n",
                json.dumps({"sentence1": "A\rB.", "sentence2": "C.", "label": 1}) + "\r\n"]
    # a BOM before the header (or the first record), separators that are not newlines in a text
    path.write_bytes(("\ufeff" + good + "".join(rows)).encode("utf-8"))
    examples = glue.read_tsv(task, path, "train") if fmt == "tsv" else glue.read_jsonl(task, path, "train")
    assert [e.texts[0] for e in examples] == ["It rains\u2028hard.", "A\rB."]
    assert [e.label for e in examples] == ["entailment", "not_entailment"]
    first = 2 if fmt == "tsv" else 1
    assert examples[1].where == f"{path}:{first + 1}"
    # a Latin-1 byte on the second row
    path.write_bytes((good + rows[0]).encode("utf-8") + "1\tCaf\xe9.\tC.\tentailment\n".encode("latin-1"))
    if fmt == "jsonl":
        path.write_bytes(rows[0].encode("utf-8") + b'{"sentence1": "Caf\xe9", "sentence2": "C", "label": 0}\n')
    reader = glue.read_tsv if fmt == "tsv" else glue.read_jsonl
    column = 6 if fmt == "tsv" else 19
    with pytest.raises(AddropError, match=rf"^{path}:{first + 1}: not UTF-8 \(byte 0xe9 at column "
                                          rf"{column}\)$"):
        reader(task, path, "train")


def test_bad_scores_and_missing_files(tmp_path):
    task = glue.get_task("stsb")
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    (tmp_path / "train.tsv").write_text(f"{header}\n0\tg\tf\t1\t1\ts\ts\ta\tb\thigh\n", encoding="utf-8")
    with pytest.raises(AddropError, match=r"train\.tsv:2: STS-B score 'high' is not a number"):
        glue.read_split(task, tmp_path, "train")
    with pytest.raises(AddropError, match=r"missing file .*dev\.tsv \(STS-B valid split\)"):
        glue.read_split(task, tmp_path, "valid")
    with pytest.raises(AddropError, match="unknown GLUE task 'wnli'"):
        glue.get_task("wnli")


def test_hugging_face_jsonl_dump(tmp_path):
    """Integer ClassLabel ids map to GLUE's label strings; -1 marks the unlabelled test set."""
    task = glue.get_task("mnli")
    rows = [{"premise": "P.", "hypothesis": "H.", "label": i, "idx": i} for i in range(3)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "test_matched.jsonl").write_text(
        json.dumps({"premise": "P.", "hypothesis": "H.", "label": -1, "idx": 0}) + "\n")
    examples = glue.read_split(task, tmp_path, "train")
    assert [e.label for e in examples] == ["entailment", "neutral", "contradiction"]
    assert glue.read_split(task, tmp_path, "test")[0].label is None
    (tmp_path / "validation_matched.jsonl").write_text(
        json.dumps({"premise": "P.", "hypothesis": "H.", "label": 3}) + "\n")
    with pytest.raises(AddropError, match=r"validation_matched\.jsonl:1: label 3 is not a MNLI class id"):
        glue.read_split(task, tmp_path, "valid")
    (tmp_path / "validation_matched.jsonl").write_text(json.dumps({"premise": "P.", "label": 0}) + "\n")
    with pytest.raises(AddropError, match=r"validation_matched\.jsonl:1: no field 'hypothesis'"):
        glue.read_split(task, tmp_path, "valid")


def test_longest_first_truncation_matches_hugging_face(tmp_path):
    tokenizer = wordpiece_tokenizer(tmp_path / "tok")
    rng = random.Random(3)
    for _ in range(50):
        a = " ".join(rng.choices(FILLER, k=rng.randint(1, 12)))
        b = " ".join(rng.choices(FILLER, k=rng.randint(1, 12)))
        budget = rng.randint(3, 20)
        ids_a = tokenizer(a, add_special_tokens=False)["input_ids"]
        ids_b = tokenizer(b, add_special_tokens=False)["input_ids"]
        ours = glue.truncate_pair(ids_a, ids_b, budget)
        theirs = tokenizer(a, b, truncation="longest_first", max_length=budget + 3)["input_ids"]
        assert [2] + ours[0] + [3] + ours[1] + [3] == theirs
    assert glue.truncate_pair([1, 2, 3], None, 2) == ([1, 2], None)


# --------------------------------------------------------------------------------------------
# addrop-prepare-glue


def test_prepare_round_trip_with_a_hugging_face_tokenizer(tmp_path):
    raw = write_mrpc(tmp_path / "raw", sizes=(20, 10, 5))
    tokenizer_dir = make_tokenizer(tmp_path / "tok")
    dest = tmp_path / "bin"
    prepare_glue.main(["--task", "MRPC", "--input", str(raw), "--dest", str(dest),
                       "--hf-tokenizer", str(tokenizer_dir)])
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    examples = glue.read_split(glue.get_task("mrpc"), raw, "train")
    for k in (0, 1):
        dictionary, dataset = load_split(dest, f"input{k}", "train")
        assert len(dataset) == 20
        for i, example in enumerate(examples):
            ids = dataset[i].tolist()
            assert ids[-1] == dictionary.eos()
            assert [int(dictionary[j]) for j in ids[:-1]] == \
                hf(example.texts[k], add_special_tokens=False)["input_ids"]
    labels, label_data = load_split(dest, "label", "train")
    assert labels.symbols[labels.nspecial:] == ["0", "1"]  # ClassLabel order, not frequency
    assert [labels[t[0]] for t in label_data] == [e.label for e in examples]
    meta = json.loads((dest / "glue.json").read_text())
    assert meta["task"] == "mrpc" and meta["splits"]["test"] == {
        "examples": 5, "labelled": False, "tokens": meta["splits"]["test"]["tokens"],
        "unk": 0, "truncated": 0}
    assert not (dest / "label" / "test.bin").exists()
    assert (meta["init_token"], meta["separator_token"]) == (0, 2)


def test_prepare_regression_scores_and_max_len(tmp_path):
    raw = write_stsb(tmp_path / "raw", sizes=(12, 6, 3))
    dest = tmp_path / "bin"
    prepare_glue.main(["--task", "sts-b", "--input", str(raw), "--dest", str(dest),
                       "--hf-tokenizer", str(make_tokenizer(tmp_path / "tok")),
                       "--max-len", "9", "--layout", "bert"])
    examples = glue.read_split(glue.get_task("stsb"), raw, "valid")
    scores = (dest / "label" / "valid.label").read_text().split()
    assert [float(s) for s in scores] == [float(e.label) for e in examples]
    _, first = load_split(dest, "input0", "valid")
    _, second = load_split(dest, "input1", "valid")
    for a, b in zip(first, second):  # [CLS] A [SEP] B [SEP] within 9 tokens
        assert 1 + len(a) + len(b) <= 9
    meta = json.loads((dest / "glue.json").read_text())
    assert meta["regression"] and meta["separator_token"] is None
    assert meta["splits"]["valid"]["truncated"] == 6  # every sentence has 5 to 7 words


def test_prepare_with_a_pretrained_dictionary_in_token_or_id_form(tmp_path):
    """A converted model's dict.txt may list token strings or token ids; both map exactly."""
    raw = write_mrpc(tmp_path / "raw", sizes=(8, 4, 0))
    (raw / "test.tsv").unlink()
    tokenizer_dir = make_tokenizer(tmp_path / "tok")
    rng = random.Random(0)
    order = list(range(5, len(WORDPIECES)))
    rng.shuffle(order)  # the model's dictionary order differs from the tokenizer's ids
    for form, symbol in (("tokens", lambda i: WORDPIECES[i]), ("ids", str)):
        dict_path = tmp_path / f"dict.{form}.txt"
        dict_path.write_text("".join(f"{symbol(i)} 1\n" for i in order))
        dest = tmp_path / form
        prepare_glue.main(["--task", "mrpc", "--input", str(raw), "--dest", str(dest),
                           "--hf-tokenizer", str(tokenizer_dir), "--dict", str(dict_path)])
        assert json.loads((dest / "glue.json").read_text())["symbols"] == form
        assert (dest / "input0" / "dict.txt").read_text() == dict_path.read_text()
        dictionary, dataset = load_split(dest, "input0", "train")
        first = glue.read_split(glue.get_task("mrpc"), raw, "train")[0].texts[0]
        assert [dictionary[i] for i in dataset[0][:-1]] == [symbol(WORDPIECES.index(w))
                                                             for w in first.split()]
    # a token convert_hf_encoder.py renamed (conversion.json beside dict.txt) maps to its new name
    converted = tmp_path / "converted"
    converted.mkdir()
    renamed = {"golden": "<unreachable_3>"}
    (converted / "dict.txt").write_text("".join(f"{renamed.get(WORDPIECES[i], WORDPIECES[i])} 1\n"
                                                for i in order))
    (converted / "conversion.json").write_text(json.dumps({"renamed_tokens": renamed}))
    prepare_glue.main(["--task", "mrpc", "--input", str(raw), "--dest", str(tmp_path / "renamed"),
                       "--hf-tokenizer", str(tokenizer_dir), "--dict", str(converted / "dict.txt")])
    dictionary, dataset = load_split(tmp_path / "renamed", "input0", "train")
    examples = glue.read_split(glue.get_task("mrpc"), raw, "train")
    for example, row in zip(examples, dataset):
        assert [dictionary[i] for i in row[:-1]] == [renamed.get(w, w)
                                                     for w in example.texts[0].split()]
    assert any(CUE in e.texts[0].split() for e in examples)

    (tmp_path / "wrong.txt").write_text("".join(f"x{i} 1\n" for i in range(30)))
    with pytest.raises(AddropError, match="--dict holds only 0 of the tokenizer's"):
        prepare_glue.main(["--task", "mrpc", "--input", str(raw), "--dest", str(tmp_path / "w"),
                           "--hf-tokenizer", str(tokenizer_dir), "--dict", str(tmp_path / "wrong.txt")])


def test_prepare_with_sentencepiece_and_gpt2_bpe(tmp_path):
    import sentencepiece as spm

    raw = write_mrpc(tmp_path / "raw", sizes=(30, 6, 0))
    (raw / "test.tsv").unlink()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(e.texts) for e in glue.read_split(
        glue.get_task("mrpc"), raw, "train")))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "spm"),
                                   vocab_size=40, model_type="unigram", minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "spm.model"))
    prepare_glue.main(["--task", "mrpc", "--input", str(raw), "--dest", str(tmp_path / "spm_bin"),
                       "--sentencepiece", str(tmp_path / "spm.model")])
    dictionary, dataset = load_split(tmp_path / "spm_bin", "input1", "valid")
    second = glue.read_split(glue.get_task("mrpc"), raw, "valid")[0].texts[1]
    assert [dictionary[i] for i in dataset[0][:-1]] == sp.encode(second, out_type=str)

    # a byte-level GPT-2 BPE with a few merges, in fairseq RoBERTa's encoder.json/vocab.bpe form
    from fairseq.data.encoders.gpt2_bpe_utils import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    merges = [("r", "i"), ("ri", "v"), ("riv", "e"), ("rive", "r"), ("Ġ", "g")]
    vocab = {s: i for i, s in enumerate(symbols + ["".join(m) for m in merges])}
    (tmp_path / "encoder.json").write_text(json.dumps(vocab))
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    prepare_glue.main(["--task", "mrpc", "--input", str(raw), "--dest", str(tmp_path / "bpe_bin"),
                       "--gpt2-bpe", str(tmp_path / "encoder.json"), str(tmp_path / "vocab.bpe")])
    dictionary, dataset = load_split(tmp_path / "bpe_bin", "input0", "train")
    first = glue.read_split(glue.get_task("mrpc"), raw, "train")[0].texts[0]
    from fairseq.data.encoders.gpt2_bpe_utils import get_encoder

    expected = get_encoder(str(tmp_path / "encoder.json"), str(tmp_path / "vocab.bpe")).encode(first)
    assert [int(dictionary[i]) for i in dataset[0][:-1]] == expected
    assert len(dictionary) == 4 + len(vocab)


def test_prepare_rejects_bad_arguments_in_one_line(tmp_path):
    raw = write_mrpc(tmp_path / "raw", sizes=(4, 4, 0))
    (raw / "test.tsv").unlink()
    tok = str(make_tokenizer(tmp_path / "tok"))
    base = ["--task", "mrpc", "--input", str(raw), "--dest", str(tmp_path / "out")]
    with pytest.raises(AddropError, match="give exactly one of --hf-tokenizer"):
        prepare_glue.main(base)
    with pytest.raises(AddropError, match="--max-len 4 leaves no room for text"):
        prepare_glue.main(base + ["--hf-tokenizer", tok, "--max-len", "4"])
    with pytest.raises(AddropError, match="--splits: MRPC has no split 'valid1'"):
        prepare_glue.main(base + ["--hf-tokenizer", tok, "--splits", "train,valid1"])
    (raw / "test.tsv").write_text("index\tsentence\n0\tx\n")
    with pytest.raises(AddropError, match=r"test\.tsv:1: no column '#1 String'"):
        prepare_glue.main(base + ["--hf-tokenizer", tok])
    assert not (tmp_path / "out").exists()


def test_submission_file_format(tmp_path):
    path = tmp_path / "STS-B.tsv"
    glue.write_submission(path, glue.get_task("stsb"), [-0.5, 2.25, 7.0])
    assert path.read_text() == "index\tprediction\n0\t0.000\n1\t2.250\n2\t5.000\n"
    with pytest.raises(ValueError, match="not a RTE label"):
        glue.write_submission(path, glue.get_task("rte"), ["1"])
    with pytest.raises(AddropError, match="not for split 'valid'"):
        glue.submission_name(glue.get_task("rte"), "valid")
