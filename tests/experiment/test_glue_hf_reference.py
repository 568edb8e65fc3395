"""examples/glue/compare/hf_reference.py, the Hugging Face reference loop, on a tiny slice: a tiny
random BERT made here, made-up MRPC-shaped data split by glue_splits, two epochs."""
import importlib.util
import json

import pytest

from analysis_fixtures import REPO
from test_glue_data import WORDPIECES, make_tokenizer, write_mrpc

from addrop_fairseq.data import glue_splits
from addrop_fairseq.experiment import protocols


def _load():
    path = REPO / "examples" / "glue" / "compare" / "hf_reference.py"
    spec = importlib.util.spec_from_file_location("glue_hf_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hf_reference = _load()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import BertConfig, BertForSequenceClassification

    root = tmp_path_factory.mktemp("hf")
    raw = write_mrpc(root / "raw", sizes=(80, 48, 4))
    glue_splits.write_splits("mrpc", raw, root / "splits", ["full"], seed=1)
    model_dir = make_tokenizer(root / "bert")
    config = BertConfig(vocab_size=len(WORDPIECES), hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    BertForSequenceClassification(config).save_pretrained(str(model_dir))
    return root / "splits" / "full", model_dir


def _train(tiny, output, seeds="1,2"):
    data, model = tiny
    hf_reference.main(["--data", str(data), "--task", "mrpc", "--model", str(model),
                       "--max-len", "32", "--epochs", "2", "--lr", "1e-3", "--seeds", seeds,
                       "--threads", "1", "--output", str(output)])
    return [json.loads(line) for line in output.read_text().splitlines()]


def test_each_seed_records_both_splits_every_epoch_in_the_runners_shape(tiny, tmp_path):
    records = _train(tiny, tmp_path / "ref.jsonl")
    assert [r["seed"] for r in records] == [1, 2]
    for record in records:
        assert [e["epoch"] for e in record["epochs"]] == [1, 2]
        for epoch in record["epochs"]:
            assert set(epoch["valid"]) == {"accuracy", "f1", "acc_and_f1"}
            # the selection split holds 8 of the 80 training rows, the official dev file 48
            assert epoch["valid"]["accuracy"] * 8 / 100 == pytest.approx(
                round(epoch["valid"]["accuracy"] * 8 / 100))
            assert epoch["report_metric"] == epoch["test"]["accuracy"]
        held = protocols.run_score(record, protocols.HELD_OUT, maximize=True)
        assert held.epoch == record["best"]["epoch"] and held.reported == record["test_metric"]
    # the same seed trains the same model: a rerun gives the same numbers
    again = _train(tiny, tmp_path / "again.jsonl", seeds="2")
    assert again[0]["epochs"] == records[1]["epochs"]
    # finished seeds are not rerun
    assert len(_train(tiny, tmp_path / "ref.jsonl")) == 2


def test_compare_with_a_comparison_uses_welch_intervals(tmp_path):
    reference = tmp_path / "ref.jsonl"
    reference.write_text("".join(json.dumps({"best": {"valid_metric": v}, "test_metric": t}) + "\n"
                                 for v, t in ((60, 50), (62, 54))))
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps({"arm": "plain", "status": "ok", "best": {
        "valid_metric": v}, "test_metric": t}) + "\n" for v, t in ((61, 53), (63, 55))))
    table = hf_reference.compare(reference, results)
    # official dev: mean 54 against 52 -> +2.00
    # Welch by hand, 2 seeds a side. Selection: variances 2 and 2, se sqrt(2), df 2, t 4.303:
    # +- 6.085. Official dev: variances 2 and 8, se sqrt(5), df 25/17, t 6.19: +- 13.84
    assert ("| fairseq `plain` | 2 | 62.00 +- 1.41 | 54.00 +- 1.41 | +1.00 [-5.08, 7.08] "
            "| +2.00 [-11.84, 15.84] |") in table
    assert table.startswith("| training loop | seeds | selection split | official dev | selection:")

    # the NER reference loop's table is the same function over its dev and test F1
    path = REPO / "examples" / "ner" / "compare" / "hf_reference.py"
    spec = importlib.util.spec_from_file_location("ner_hf_reference", path)
    ner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ner)
    reference.write_text("".join(json.dumps({"dev": d, "test": t}) + "\n"
                                 for d, t in ((60, 50), (62, 54))))
    table = ner.compare(reference, results)
    assert table.startswith("| training loop | seeds | dev F1 | test F1 | dev: minus")
    assert "| fairseq `plain` | 2 | 62.00 +- 1.41 | 54.00 +- 1.41 | +1.00 [-5.08, 7.08] " in table
