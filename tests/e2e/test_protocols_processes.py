"""The tests of experiment/test_protocols.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_protocols import (  # noqa: F401
    build_spec,
    pytest,
    runner,
)


@pytest.mark.slow
def test_runner_scores_both_splits_every_epoch_end_to_end(tmp_path, plugin_dir):
    """Made-up MRPC-shaped data through glue_splits and prepare_glue, a tiny RoBERTa trained by
    the runner with report_split: each epoch's official-dev score is in the record, the record's
    test score is the one at the epoch chosen on the selection split, and that equals what
    addrop-evaluate-glue gives on the kept checkpoint_best.pt."""
    from test_glue_data import make_tokenizer, prepare_glue, write_mrpc
    from test_glue_end_to_end import TINY, evaluate

    from addrop_fairseq.data import glue_splits

    raw = write_mrpc(tmp_path / "raw", sizes=(200, 80, 4))
    glue_splits.write_splits("mrpc", raw, tmp_path / "splits", ["full"], seed=1)
    data = tmp_path / "bin"
    prepare_glue.main(["--task", "mrpc", "--input", str(tmp_path / "splits" / "full"),
                       "--dest", str(data), "--hf-tokenizer", str(make_tokenizer(tmp_path / "tok")),
                       "--max-len", "32"])
    spec = build_spec({
        "data": str(data), "baseline": "plain", "seeds": [1], "report_split": "test",
        "train": ["--user-dir", plugin_dir, "--task", "addrop_sentence_prediction", "--criterion",
                  "addrop_sentence_prediction", "--init-token", "0", "--separator-token", "2",
                  *TINY, "--optimizer", "adam", "--lr", "3e-3", "--batch-size", "16",
                  "--max-epoch", "3", "--cpu", "--num-classes", "2"],
        "arms": {"plain": "--addrop-schedule off"},
        "select": {"metric": "accuracy", "maximize": True},
    })
    comparison = runner.Comparison(spec, tmp_path / "out", keep_checkpoints=True, echo=lambda _: 0)
    (record,) = comparison.run()
    assert record["status"] == "ok", record.get("error")
    assert [e["epoch"] for e in record["epochs"]] == [1, 2, 3]
    assert all(e["report_metric"] is not None for e in record["epochs"])
    assert record["test_metric"] == record["best"]["report_metric"]
    checkpoint = tmp_path / "out" / "runs" / "plain" / "seed1" / "checkpoints" / "checkpoint_best.pt"
    reports = evaluate("--data", data, "--path", checkpoint, "--split", "valid,test", "--cpu")
    assert reports["test"]["examples"] == 80 and reports["valid"]["examples"] == 20
    assert reports["test"]["accuracy"] == pytest.approx(record["test_metric"], abs=0.05)
    assert reports["valid"]["accuracy"] == pytest.approx(record["best"]["valid_metric"], abs=0.05)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "## Two protocols on the same runs (reported: `test`)" in summary
