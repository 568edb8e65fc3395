"""The scoring commands' library side and error paths: one line naming the bad value, exit 1,
under the commands' policy (in this process: no start-up of a subprocess)."""
import argparse
import importlib

import pytest
import sacrebleu

from addrop_fairseq.cli import policy
from addrop_fairseq.criterions.two_pass import ModelProxy
from addrop_fairseq.scoring.bleu import score_bleu


def run_command(name, argv, monkeypatch, capsys):
    """``addrop-NAME ARGV`` in this process: (exit code, stderr lines)."""
    # run() installs the argparse hint for good; give this process its own back afterwards
    monkeypatch.setattr(argparse.ArgumentParser, "error", argparse.ArgumentParser.error)
    main = importlib.import_module(f"addrop_fairseq.cli.{name}").main
    with pytest.raises(SystemExit) as exited:
        policy.run(lambda: main(argv), prog=policy.command_name(main))
    return exited.value.code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("name, extra", [
    ("evaluate_glue", []),
    ("evaluate_ner", ["--output-dir", "out"]),
])
def test_a_missing_checkpoint_is_one_line(name, extra, tmp_path, monkeypatch, capsys):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "test.conll").write_text("EU B-ORG\n\n", encoding="utf-8")
    missing = tmp_path / "none.pt"
    code, err = run_command(name, ["--data", str(tmp_path), "--path", str(missing), *extra],
                            monkeypatch, capsys)
    assert code == 1
    assert err == [f"addrop-{name.replace('_', '-')}: error: --path {missing}: no such checkpoint"]


def test_evaluate_ner_names_a_missing_raw_split_before_loading(tmp_path, monkeypatch, capsys):
    checkpoint = tmp_path / "x.pt"
    checkpoint.write_bytes(b"not a checkpoint: loading it would fail differently")
    code, err = run_command("evaluate_ner", ["--data", str(tmp_path), "--path", str(checkpoint),
                                             "--split", "valid", "--output-dir", "out"],
                            monkeypatch, capsys)
    assert code == 1
    assert err == [f"addrop-evaluate-ner: error: {tmp_path / 'raw' / 'valid.conll'}: no such file"]


def test_bleu_of_plain_files_is_sacrebleu_and_a_missing_file_is_named(tmp_path, monkeypatch,
                                                                      capsys):
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_text("the cat sat on the mat\na dog barked\n", encoding="utf-8")
    ref.write_text("the cat sat on a mat\nthe dog barked\n", encoding="utf-8")
    score, signature, sentences = score_bleu(hyp=hyp, ref=ref)
    expected = sacrebleu.corpus_bleu(["the cat sat on the mat", "a dog barked"],
                                     [["the cat sat on a mat", "the dog barked"]])
    assert sentences == 2 and score.score == pytest.approx(expected.score) and "tok:13a" in signature
    code, err = run_command("score_bleu", ["--hyp", str(hyp), "--ref", str(tmp_path / "no.txt")],
                            monkeypatch, capsys)
    assert code == 1 and len(err) == 1
    assert err[0].startswith(f"addrop-score-bleu: error: --ref {tmp_path / 'no.txt'}: cannot read")


def test_the_model_proxy_replaces_only_the_call():
    class Model:
        training = True

        def __call__(self, x):
            return x + 1

        def get_targets(self, sample, output):
            return sample["target"]

    calls = []
    proxy = ModelProxy(Model(), lambda *args, **kwargs: calls.append((args, kwargs)) or "replaced")
    assert proxy(2, flag=True) == "replaced" and calls == [((2,), {"flag": True})]
    assert proxy.training and proxy.get_targets({"target": 7}, None) == 7
