"""The analysis scripts on tiny trained checkpoints of the three tasks: attribution maps (Fig. 1)
and the faithfulness probe. The pictures' numbers are checked against training's own code."""
import importlib
import json
import math

import numpy as np
import pytest
import torch

from addrop_fairseq.scoring.checkpoint import batches
from analysis_fixtures import REPO, glue_checkpoint, tagging_checkpoint, translation_checkpoint

TASKS = ("translation", "tagging", "glue")


def load_script(name):
    return importlib.import_module(f"addrop_fairseq.cli.{name}")


def run_command(name, argv, monkeypatch):
    """``addrop-NAME ARGV`` in this process, under the commands' policy: its exit code."""
    import argparse

    from addrop_fairseq.cli import policy

    # run() installs the argparse hint for good; give this process its own back afterwards
    monkeypatch.setattr(argparse.ArgumentParser, "error", argparse.ArgumentParser.error)
    main = load_script(name).main
    with pytest.raises(SystemExit) as exited:
        policy.run(lambda: main(argv), prog=policy.command_name(main))
    return exited.value.code


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    work = tmp_path_factory.mktemp("analysis-checkpoints")
    return {"translation": translation_checkpoint(work), "tagging": tagging_checkpoint(work),
            "glue": glue_checkpoint(work)}


def assert_png(path):
    import matplotlib.image

    assert path.stat().st_size > 1000
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and np.ptp(image) > 0


def training_masks(loaded, sample, seed, settings):
    """The masks one training step of the checkpoint's criterion (with ``settings``) applies to
    ``sample`` (AD-DROP phase on, generator seeded with ``seed``), keyed by (kind, layer)."""
    from addrop_fairseq.criterions.two_pass import Phase

    model, criterion = loaded.model, loaded.criterion
    seen = {}

    def record(module, _args):
        if module.addrop_mode == "apply" and module.drop_fn is not None:
            make_drop = module.drop_fn

            def recorded(valid):
                drop = make_drop(valid)
                seen[(module.kind, module.layer)] = drop
                return drop

            module.drop_fn = recorded

    from addrop_fairseq.modules.attention import maskable_attention
    handles = [m.register_forward_pre_hook(record) for m in maskable_attention(model)]
    rates = {}
    for name, module in model.named_modules():  # training mode without dropout: deterministic
        if hasattr(module, "p") and isinstance(getattr(module, "p"), float):
            rates[name] = module.p
            module.p = 0.0
    model.train()
    criterion.addrop_phase = Phase(True, torch.Generator().manual_seed(seed))
    saved, criterion.addrop_settings = criterion.addrop_settings, settings
    try:
        criterion(model, sample)
    finally:
        criterion.addrop_phase = None
        criterion.addrop_settings = saved
        model.eval()
        for name, module in model.named_modules():
            if name in rates:
                module.p = rates[name]
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize("task", TASKS)
def test_attribution_maps_are_what_training_draws(task, checkpoints, tmp_path, capsys):
    from addrop_fairseq.analysis import loading
    from addrop_fairseq.core.mask import addrop_mask, candidate_region

    checkpoint, data = checkpoints[task]
    loaded = loading.load_checkpoint(str(checkpoint), str(data), ["valid"], cpu=True)
    # the shortest example keeps the picture (every layer and head) quick to draw
    index = int(np.argmin(loaded.task.dataset("valid").sizes))
    out = tmp_path / "maps.png"
    seed = 3
    code = load_script("plot_attribution").main([
        "--path", str(checkpoint), "--data", str(data), "--split", "valid", "--index", str(index),
        "--layers", "all", "--heads", "all", "--seed", str(seed), "--p", "0.4", "--q", "0.5",
        "--out", str(out), "--cpu"])
    assert code == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert_png(out)
    result = json.loads(out.with_suffix(".json").read_text())
    panels = {(p["kind"], p["layer"], p["head"]): p for p in result["maps"]}
    tokens = result["maps"][0]["key_tokens"]
    if task == "translation":
        assert set(tokens) <= {f"w{i}" for i in range(20)} | {"</s>"}
    else:  # GLUE stores token ids in its dictionary: the tokenizer's pieces label the axes
        from test_glue_data import FILLER
        assert tokens[0] == "<s>" and not any(t.isdigit() for t in tokens)
        if task == "glue":
            assert set(tokens) & set(FILLER)

    # the masks: exactly those one training step of the criterion applies to this example
    sample = loading.example(loaded, "valid", index)
    from addrop_fairseq.core.step import AddropSettings
    assert loaded.criterion.addrop_settings.p == 0.3  # the checkpoint's; the plot's differ
    trained = training_masks(loaded, sample, seed, AddropSettings(p=0.4, q=0.5))
    kinds = loaded.criterion.addrop_kinds.split(",")
    heads = {"translation": 4, "tagging": 4, "glue": 2}[task]
    assert len(trained) == len(loaded.criterion._masked) and len(panels) == len(trained) * heads
    assert {(p["kind"], p["layer"]) for p in result["maps"]} == set(trained)
    assert {kind for kind, _ in trained} == set(kinds)
    total_dropped = 0
    for (kind, layer), drop in trained.items():
        for head in range(heads):
            panel = panels[(kind, layer, head)]
            mask = np.array(panel["mask"], dtype=bool)
            assert np.array_equal(mask, drop[0, head].numpy())
            total_dropped += int(mask.sum())
    assert total_dropped > 0

    # the candidate region: each valid row's top ceil(p * n) keys by the plotted attribution,
    # the mask inside it, and A a distribution over the valid keys
    rows = 0
    for panel in panels.values():
        valid = np.array(panel["valid"], dtype=bool)
        scores, region = np.array(panel["scores"]), np.array(panel["region"], dtype=bool)
        mask = np.array(panel["mask"], dtype=bool)
        assert not (mask & ~region).any() and not (region & ~valid).any()
        probs = np.array(panel["probs"])
        np.testing.assert_allclose((probs * valid).sum(-1), 1.0, atol=1e-5)
        assert len(panel["query_tokens"]) == valid.shape[0] and len(panel["key_tokens"]) == valid.shape[1]
        for t in range(valid.shape[0]):
            keys = np.nonzero(valid[t])[0]
            if len(keys) == 0:
                continue
            chosen = np.nonzero(region[t])[0]
            # ceil(p * n) keys, none scored below a key left out (ties, e.g. rows whose
            # output the target never reads, may go either way)
            assert len(chosen) == math.ceil(0.4 * len(keys) - 1e-9)
            left_out = np.setdiff1d(keys, chosen)
            if len(left_out):
                assert scores[t, chosen].min() >= scores[t, left_out].max()
            rows += 1
    assert rows > 0

    # and the same region and mask as mask.py gives for the same scores and generator
    from addrop_fairseq.analysis import maps
    settings = maps.settings_from(loaded.criterion, 0.4, 0.5, "ga", None, None)
    records = maps.attention_maps(loaded, sample, loading.chosen_modules(
        loaded.model, loaded.criterion.addrop_kinds, "all"), settings, "pseudo", seed)
    generator = torch.Generator().manual_seed(seed)
    for record in records:
        scores, valid = record["full"]["scores"], record["full"]["valid"]
        assert torch.equal(record["region"], candidate_region(scores, valid, 0.4, "high")[0])
        assert torch.equal(record["mask"], addrop_mask(scores, valid, 0.4, 0.5, "high", generator)[0])


def test_gold_and_pseudo_targets_and_other_attributions_differ_where_they_should(checkpoints, tmp_path):
    from addrop_fairseq.analysis import loading, maps

    checkpoint, data = checkpoints["tagging"]
    loaded = loading.load_checkpoint(str(checkpoint), str(data), ["valid"], cpu=True)
    sample = loading.example(loaded, "valid", 0)
    modules = loading.chosen_modules(loaded.model, "encoder_self", "0")
    by = {}
    for attribution, target in (("ga", "pseudo"), ("ga", "gold"), ("aa", "pseudo"), ("iga", "pseudo")):
        settings = maps.settings_from(loaded.criterion, 0.3, 0.3, attribution, None, 4)
        by[(attribution, target)] = maps.attention_maps(loaded, sample, modules, settings, target, 1)[0]
    aa = by[("aa", "pseudo")]
    assert torch.equal(aa["scores"], aa["probs"])  # AA: the scores are the probabilities
    assert not torch.allclose(by[("ga", "pseudo")]["scores"], by[("iga", "pseudo")]["scores"])
    assert torch.equal(by[("ga", "pseudo")]["probs"], by[("iga", "pseudo")]["probs"])


@pytest.mark.parametrize("task", TASKS)
def test_probe_at_zero_is_the_plain_evaluation_and_removes_the_requested_share(task, checkpoints,
                                                                              tmp_path, capsys):
    from addrop_fairseq.analysis import loading, probe

    checkpoint, data = checkpoints[task]
    out = tmp_path / "probe.png"
    code = load_script("probe_attribution").main([
        "--path", str(checkpoint), "--data", str(data), "--k", "0,30,70", "--batch-size", "8",
        "--out", str(out), "--cpu"])
    assert code == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert_png(out)
    result = json.loads(out.with_suffix(".json").read_text())
    assert set(result["curves"]) == {"high", "low", "random"}
    for points in result["curves"].values():
        assert [p["k"] for p in points] == [0.0, 0.3, 0.7]
        for point in points[1:]:
            assert point["rows"] > 0 and point["rows_exact"] == point["rows"]
            assert 0 < point["removed"] < point["valid"]
            assert all(math.isfinite(point[f]) for f in ("metric", "loss"))
        assert points[1]["removed"] < points[2]["removed"]
    curves = result["curves"]
    assert curves["high"][1]["removed"] == curves["low"][1]["removed"] == curves["random"][1]["removed"]

    # k = 0 is the plain evaluation, computed here the way the evaluation scripts compute it
    loaded = loading.load_checkpoint(str(checkpoint), str(data), ["valid"], cpu=True)
    zero = curves["high"][0]
    if task == "tagging":
        from seqeval.metrics import f1_score

        from addrop_fairseq.data.ner import read_conll
        from addrop_fairseq.scoring import ner
        predictions = ner.predict(loaded, "valid", 8000, None)
        sentences = read_conll(data / "raw" / "valid.conll", columns=2)
        expected = 100 * f1_score([s.tags for s in sentences],
                                  [predictions[i] for i in range(len(sentences))])
        assert result["metric"] == "f1" and zero["metric"] == pytest.approx(expected, abs=1e-3)
    elif task == "glue":
        from addrop_fairseq.scoring import glue
        report = glue.score_split(loaded, "valid", batch_size=8)
        assert zero["metric"] == pytest.approx(report[result["metric"]], abs=1e-6)
    else:
        total = correct = loss = size = 0.0
        with torch.no_grad():
            for sample in batches(loaded, "valid", batch_size=8):
                output = loaded.model(**sample["net_input"])
                lprobs = torch.log_softmax(output[0], -1)
                target = sample["target"]
                real = target.ne(loaded.task.target_dictionary.pad())
                correct += float((lprobs.argmax(-1).eq(target) & real).sum())
                total += float(real.sum())
                nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
                smooth = -lprobs.sum(-1)
                eps = 0.1 / (lprobs.size(-1) - 1)
                loss += float((((1 - 0.1 - eps) * nll + eps * smooth) * real).sum())
                size += float(real.sum())
        assert zero["metric"] == pytest.approx(100 * correct / total, abs=5e-4)  # logged rounded
        assert zero["loss"] == pytest.approx(loss / size / math.log(2), abs=2e-3)


def test_probe_removes_ceil_k_n_keys_of_every_row_in_every_order(checkpoints):
    from addrop_fairseq.analysis import loading, probe

    checkpoint, data = checkpoints["translation"]
    loaded = loading.load_checkpoint(str(checkpoint), str(data), ["valid"], cpu=True)
    samples = list(batches(loaded, "valid", batch_size=6))[:2]
    modules = loading.chosen_modules(loaded.model, "encoder_self,decoder_self,encoder_decoder", "all")
    checked = {}

    def observe(order, share, module, valid, drop):
        n = valid.expand_as(drop).sum(-1).flatten().tolist()
        removed = (drop & valid.expand_as(drop)).sum(-1).flatten().tolist()
        assert not (drop & ~valid.expand_as(drop)).any()
        for count, gone in zip(n, removed):
            if count:
                assert gone == min(math.ceil(share * count - 1e-9), count - 1), (order, share, count)
        checked[(order, share)] = checked.get((order, share), 0) + len(n)

    result = probe.run_probe(loaded, samples, modules, (0.0, 0.1, 0.5, 0.9), seed=2, observe=observe)
    assert set(checked) == {(o, s) for o in probe.ORDERS for s in (0.1, 0.5, 0.9)}
    # a faithful order and its opposite remove different keys: different losses
    assert result["curves"]["high"][2]["loss"] != result["curves"]["low"][2]["loss"]


@pytest.mark.parametrize("script, extra, message", [
    ("plot_attribution", ["--index", "999"], "--index 999: split 'valid' has"),
    ("plot_attribution", ["--heads", "7"], "--heads '7': the model has 4 heads"),
    ("plot_attribution", ["--layers", "5"], "--addrop-layers: layer 5 is out of range"),
    ("plot_attribution", ["--p", "1.5"], "--addrop-p=1.5 is outside (0, 1]"),
    ("probe_attribution", ["--k", "0,100"], "--k '0,100': percentages must be in 0..99"),
    ("probe_attribution", ["--metric", "rouge"], "--metric 'rouge': this task's validation logs"),
])
def test_bad_input_is_one_line_naming_the_value(script, extra, message, checkpoints, tmp_path, capsys,
                                                monkeypatch):
    checkpoint, data = checkpoints["translation"]
    code = run_command(script, ["--path", str(checkpoint), "--data", str(data), "--cpu",
                                "--out", str(tmp_path / "x.png"), *extra], monkeypatch)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and message in err[-1], err[-3:]
    assert err[-1].startswith(f"addrop-{script.replace('_', '-')}: error: ")
    assert not (tmp_path / "x.png").exists()


def test_missing_checkpoint_is_one_line(tmp_path, capsys, monkeypatch):
    code = run_command("probe_attribution", ["--path", str(tmp_path / "none.pt"), "--data",
                                             str(tmp_path), "--out", str(tmp_path / "x.png")],
                       monkeypatch)
    assert code == 1 and "no such checkpoint" in capsys.readouterr().err


def test_probe_bleu_refuses_decoder_attention(checkpoints, tmp_path, capsys, monkeypatch):
    checkpoint, data = checkpoints["translation"]
    code = run_command("probe_attribution", [
        "--path", str(checkpoint), "--data", str(data), "--metric", "bleu", "--out",
        str(tmp_path / "x.png"), "--cpu"], monkeypatch)
    assert code == 1 and "--modules encoder_self" in capsys.readouterr().err
