"""Every prepare script, fed random bytes and random malformed lines (hypothesis), either stops
with one line and exit status 1, or writes a correct --dest; never a traceback, never a partly
written --dest.

Each example starts from an earlier --dest (a marker file) and passes --force: an error must
leave it exactly as it was, a success must replace it whole. Whether the input is acceptable is
decided here independently of the scripts' readers (split on b"\\n", UTF-8, the format's rules),
so a script that accepted a malformed file, or refused a good one, fails the property too.
"""
import codecs
import re
import shutil
from pathlib import Path

import pytest
import sentencepiece as spm
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from addrop_fairseq.errors import AddropError
from conftest import REPO
from test_ner_fixtures import load_script, make_sentences
from addrop_fairseq.data.samples import QUICKSTART_CORPUS

FIXED = dict(deadline=None, database=None, derandomize=True,
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# lines a user's file may really hold: other encodings, control and separator characters, a
# byte-order mark, Windows line ends, cut multi-byte characters, too many or too few fields
MALFORMED = st.one_of(
    st.sampled_from([b"", b"\xff\xfe", codecs.BOM_UTF8, b"\r", b"\x00", b"\t", b"M\xfcnchen",
                     "\u00e9t\u00e9".encode()[:-1], "w\u2028x".encode(), "a\x85b".encode(),
                     b"a b", b"a b c d e", b"-DOCSTART-", "\u3000".encode(), b"\x0c"]),
    st.binary(max_size=24),
    st.text(max_size=16).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


def corrupt(data: st.DataObject, content: bytes) -> bytes:
    """``content`` with random damage: replaced by random bytes, cut, or lines inserted."""
    kind = data.draw(st.sampled_from(["random bytes", "cut", "lines", "lines", "bom", "crlf"]))
    if kind == "crlf":  # harmless damage, so that the property's success side is exercised too
        return content.replace(b"\n", b"\r\n")
    if kind == "random bytes":
        return data.draw(st.binary(max_size=300))
    if kind == "cut":
        return content[:data.draw(st.integers(0, len(content)))]
    if kind == "bom":
        return codecs.BOM_UTF8 + content
    lines = content.split(b"\n")
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(lines)))
        piece = data.draw(MALFORMED)
        if data.draw(st.booleans()) and at < len(lines):
            lines[at] = lines[at] + piece  # inside an existing line
        else:
            lines.insert(at, piece)
    return b"\n".join(lines)


def text_lines(raw: bytes):
    """The lines as the scripts must read them, or None where the bytes are not UTF-8."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    parts = raw.split(b"\n")
    if parts[-1] == b"":
        parts.pop()
    try:
        return [part[:-1].decode() if part.endswith(b"\r") else part.decode() for part in parts]
    except UnicodeDecodeError:
        return None


def snapshot(directory: Path) -> dict:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def run_script(name: str, argv, dest: Path):
    """Runs the script's main() on a --dest holding an earlier run's marker; checks the --dest
    invariants and returns the one-line error (None on success)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    (dest / "previous-run.txt").write_text("an earlier, complete run")
    before = snapshot(dest)
    try:
        load_script(name).main([*map(str, argv), "--dest", str(dest), "--force"])
        error = None
    except AddropError as exception:
        # the command prints it as its one-line error (policy.run); a SystemExit (argparse's
        # status 2: the test passed bad options) or any other exception propagates and fails
        error = str(exception)
        assert error and "\n" not in error, error
        assert "Traceback" not in error
        assert snapshot(dest) == before, "a failed run changed the existing --dest"
    partial = [p.name for p in dest.parent.iterdir() if p.name.startswith(f".{dest.name}.")]
    assert partial == [], f"left behind {partial}"
    if error is None:
        assert not (dest / "previous-run.txt").exists(), "--force did not replace --dest whole"
    event("written" if error is None else "one-line error")
    return error


# --- prepare_conll2003 -------------------------------------------------------------------------

TAG = re.compile(r"^(O|[BI]-\S+)$")


def conll_sentences(lines, columns=4):
    """(words, tags) sentences of a CoNLL file, or None where a line breaks the format."""
    sentences, current = [], []
    for line in lines:
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if current:
                sentences.append(current)
            current = []
            continue
        if len(fields) != columns or not TAG.match(fields[-1]):
            return None
        current.append((fields[0], fields[-1]))
    if current:
        sentences.append(current)
    return sentences or None


def conll_file(sentences) -> bytes:
    lines = ["-DOCSTART- -X- -X- O", ""]
    for sentence in sentences:
        lines += [f"{word} NNP B-NP {tag}" for word, tag in sentence] + [""]
    return ("\n".join(lines) + "\n").encode()


CONLL_SPLITS = {"train": make_sentences(6, seed=1), "valid": make_sentences(3, seed=2),
                "test": make_sentences(3, seed=3)}


@settings(max_examples=100, **FIXED)
@given(data=st.data())
def test_prepare_conll2003_on_damaged_files(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("conll")
    damaged = data.draw(st.sets(st.sampled_from(list(CONLL_SPLITS)), min_size=1))
    expected = {}
    for split, sentences in CONLL_SPLITS.items():
        content = conll_file(sentences)
        if split in damaged:
            content = corrupt(data, content)
        (root / f"{split}.txt").write_bytes(content)
        lines = text_lines(content)
        expected[split] = conll_sentences(lines) if lines is not None else None
    acceptable = all(expected.values())
    if acceptable:  # the task needs every label of valid/test in training
        known = {tag for sentence in expected["train"] for _, tag in sentence}
        # the script converts IOB1 to BIO2; a tag it cannot map is caught by this check as well
        acceptable = all(tag[2:] in {k[2:] for k in known} or tag == "O"
                         for split in ("valid", "test") for sentence in expected[split]
                         for _, tag in sentence)
    dest = root / "out"
    error = run_script("prepare_conll2003", ["--conll-dir", root, "--tokenizer", "whitespace",
                                             "--min-count", "1"], dest)
    if not acceptable:
        assert error is not None, "a malformed file was accepted"
        return
    if error is not None and "never occurs in training" in error:
        return  # IOB1 -> BIO2 can turn an I-X the oracle counted into an unseen B-X
    assert error is None, error
    from fairseq.data import Dictionary, data_utils

    labels = Dictionary.load(str(dest / "label" / "dict.txt"))
    words = Dictionary.load(str(dest / "input" / "dict.txt"))
    for split, sentences in expected.items():
        raw = conll_sentences(text_lines((dest / "raw" / f"{split}.conll").read_bytes()), 2)
        assert [[w for w, _ in s] for s in raw] == [[w for w, _ in s] for s in sentences]
        tokens = data_utils.load_indexed_dataset(str(dest / "input" / split), None, "mmap")
        label_ids = data_utils.load_indexed_dataset(str(dest / "label" / split), None, "mmap")
        assert len(tokens) == len(label_ids) == len(sentences)
        for index, sentence in enumerate(raw):
            # words the training split never shows are <unk> (whitespace tokenizer)
            assert [words[i] for i in tokens[index].tolist()] == \
                [w if words.index(w) != words.unk() else "<unk>" for w, _ in sentence]
            assert [labels[i] for i in label_ids[index].tolist()] == [t for _, t in sentence]


# --- prepare_glue -------------------------------------------------------------------------------

RTE_LABELS = ("entailment", "not_entailment")
GLUE_HEADER = "index\tsentence1\tsentence2\tlabel"


def rte_file(rows) -> bytes:
    return ("\n".join([GLUE_HEADER] + [f"{i}\t{a}\t{b}\t{label}" for i, (a, b, label)
                                       in enumerate(rows)]) + "\n").encode()


def rte_rows(lines):
    """(sentence1, sentence2, label) rows of an RTE TSV file, or None where one is malformed."""
    if not lines or lines[0].split("\t") != GLUE_HEADER.split("\t"):
        return None
    rows = []
    for line in lines[1:]:
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 4 or fields[3].strip() not in RTE_LABELS:
            return None
        rows.append(tuple(fields[1:]))
    return rows or None


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    """A small byte-fallback sentencepiece model: it encodes any text."""
    root = tmp_path_factory.mktemp("spm")
    text = (Path(QUICKSTART_CORPUS + ".en")).read_text(encoding="utf-8").split("\n")[:300]
    (root / "text.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(root / "text.txt"), model_prefix=str(root / "spm"),
                                   vocab_size=400, byte_fallback=True, character_coverage=1.0,
                                   hard_vocab_limit=False, num_threads=1, minloglevel=2)
    return root / "spm.model"


GLUE_ROWS = {"train.tsv": [("It rains.", "It is wet.", "entailment"),
                           ("A cat sat.", "A dog ran.", "not_entailment"),
                           ("He left.", "He is gone.", "entailment")],
             "dev.tsv": [("She sings.", "She is silent.", "not_entailment")]}


@settings(max_examples=100, **FIXED)
@given(data=st.data())
def test_prepare_glue_on_damaged_files(tmp_path_factory, spm_model, data):
    root = tmp_path_factory.mktemp("glue")
    damaged = data.draw(st.sets(st.sampled_from(list(GLUE_ROWS)), min_size=1))
    expected = {}
    for name, rows in GLUE_ROWS.items():
        content = rte_file(rows)
        if name in damaged:
            content = corrupt(data, content)
        (root / "rte").mkdir(exist_ok=True)
        (root / "rte" / name).write_bytes(content)
        lines = text_lines(content)
        expected[name] = rte_rows(lines) if lines is not None else None
    error = run_script("prepare_glue", ["--task", "rte", "--input", root / "rte",
                                        "--input-format", "tsv", "--sentencepiece", spm_model],
                       root / "out")
    if not all(expected.values()):
        assert error is not None, "a malformed file was accepted"
        return
    assert error is None, error
    from fairseq.data import data_utils

    processor = spm.SentencePieceProcessor(model_file=str(spm_model))
    for name, split in (("train.tsv", "train"), ("dev.tsv", "valid")):
        labels = data_utils.load_indexed_dataset(str(root / "out" / "label" / split), None, "mmap")
        assert len(labels) == len(expected[name])
        for k in (0, 1):
            dataset = data_utils.load_indexed_dataset(str(root / "out" / f"input{k}" / split),
                                                      None, "mmap")
            assert [len(dataset[i]) for i in range(len(dataset))] == \
                [len(processor.encode(row[k], out_type=str)) + 1 for row in expected[name]]


# --- prepare_translation ------------------------------------------------------------------------

PAIRS = [("a small house", "o casa mica"), ("the red door", "usa rosie"),
         ("good morning", "buna dimineata"), ("two cats", "doua pisici"),
         ("open the file", "deschide fisierul"), ("save as", "salveaza ca"),
         ("print", "tipareste")]
