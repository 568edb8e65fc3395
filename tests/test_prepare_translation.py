"""scripts/prepare_translation.py: splits, sentencepiece and fairseq binaries, and its errors."""
import sentencepiece as spm
from fairseq.data import Dictionary, data_utils

from conftest import REPO, run_cli


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_corpus_round_trips_through_sentencepiece_and_binaries(tmp_path):
    en = (REPO / "data/quickstart/en-ro.en").read_text(encoding="utf-8").split("\n")[:200]
    ro = (REPO / "data/quickstart/en-ro.ro").read_text(encoding="utf-8").split("\n")[:200]
    write(tmp_path / "c.en", en), write(tmp_path / "c.ro", ro)
    run_cli("scripts.prepare_translation", "-s", "en", "-t", "ro", "--corpus", tmp_path / "c",
            "--valid-size", "20", "--test-size", "20", "--vocab-size", "800",
            "--dest", tmp_path / "out", "--workers", "1", cwd=REPO)
    out = tmp_path / "out"
    raw_test = (out / "raw/test.ro").read_text(encoding="utf-8").splitlines()
    assert len(raw_test) == 20 and set(raw_test) <= set(ro)
    # the held-out pairs stay aligned
    pairs = dict(zip(en, ro))
    for source, target in zip((out / "raw/test.en").read_text(encoding="utf-8").splitlines(), raw_test):
        assert pairs[source] == target
    dictionary = Dictionary.load(str(out / "bin/dict.ro.txt"))
    dataset = data_utils.load_indexed_dataset(str(out / "bin/test.en-ro.ro"), dictionary)
    processor = spm.SentencePieceProcessor(model_file=str(out / "spm.model"))
    decoded = [processor.decode(dictionary.string(dataset[i]).split()) for i in range(len(dataset))]
    assert decoded == raw_test


def test_mismatched_sides_are_named(tmp_path):
    write(tmp_path / "c.en", ["a b c", "d e f"])
    write(tmp_path / "c.ro", ["a b c"])
    result = run_cli("scripts.prepare_translation", "-s", "en", "-t", "ro", "--corpus",
                     tmp_path / "c", "--dest", tmp_path / "out", cwd=REPO, check=False)
    assert result.returncode != 0
    assert f"{tmp_path / 'c.en'} has 2 lines but {tmp_path / 'c.ro'} has 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_empty_line_is_named_with_its_number(tmp_path):
    write(tmp_path / "c.en", ["a b c", "", "x"])
    write(tmp_path / "c.ro", ["a b c", "d", "y"])
    result = run_cli("scripts.prepare_translation", "-s", "en", "-t", "ro", "--corpus",
                     tmp_path / "c", "--dest", tmp_path / "out", cwd=REPO, check=False)
    assert f"{tmp_path / 'c.en'}:2: empty line" in result.stderr
