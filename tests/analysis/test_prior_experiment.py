"""addrop-prior-experiment (paper section 2.2): the four arms, what their options do in the
criterion, and a tiny end-to-end run through the comparison runner."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from analysis_fixtures import REPO, TAGGING, build
from test_ner_fixtures import prepared_corpus

from addrop_fairseq.analysis import prior
from addrop_fairseq.errors import AddropError
from addrop_fairseq.experiment.runner import fingerprint

BASE = {"data": "data-bin/x", "train": "--task addrop_tagging --addrop-p 0.8 --max-epoch 3",
        "arms": {"plain": "--addrop-schedule off", "ga": "--addrop-p 0.5"},
        "grid": {"p": [0.1, 0.5], "q": [0.1]}, "baseline": "plain", "seeds": [1, 2],
        "select": {"metric": "f1", "maximize": True}, "test": {"kind": "ner", "split": "test"}}


def test_the_spec_has_the_four_strategies_and_keeps_the_base():
    spec = prior.prior_spec(BASE, rate=0.3, layers="0", seeds=[4, 5, 6])
    assert [arm.name for arm in spec.arms] == ["none", "random", "low", "high"]
    assert spec.baseline == "none" and spec.seeds == [4, 5, 6] and spec.valid_on_train
    assert spec.train == ("--task", "addrop_tagging", "--addrop-p", "0.8", "--max-epoch", "3")
    assert spec.select_metric == "f1" and spec.maximize and spec.test["kind"] == "ner"
    options = {arm.name: " ".join(arm.options) for arm in spec.arms}
    assert options["none"] == "--addrop-schedule off"
    for name in ("random", "low", "high"):
        assert "--addrop-schedule always --addrop-target gold --addrop-attribution ga " \
               "--addrop-layers 0" in options[name]
    assert options["high"].endswith("--addrop-strategy high --addrop-p 0.3 --addrop-q 1")
    assert options["low"].endswith("--addrop-strategy low --addrop-p 0.3 --addrop-q 1")
    assert options["random"].endswith("--addrop-strategy random --addrop-p 0.3 --addrop-q 0.3")
    # the same request gives the same runs (the runner skips what is recorded)
    again = prior.prior_spec(BASE, rate=0.3, layers="0", seeds=[4, 5, 6])
    assert [fingerprint(spec, a, 4) for a in spec.arms] == [fingerprint(again, a, 4) for a in again.arms]
    with_modules = prior.prior_spec(BASE, 0.3, "0,1", "encoder_self")
    assert "--addrop-layers 0,1 --addrop-modules encoder_self" in " ".join(with_modules.arm("high").options)


def test_base_spec_files_need_no_arms_and_bad_ones_are_named(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("data: d\ntrain: --task addrop_tagging\nseeds: [1, 2]\n")
    spec = prior.prior_spec(prior.read_base(base))
    assert [a.name for a in spec.arms] == list(prior.ARMS) and spec.seeds == [1, 2]
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(AddropError, match="list.yaml: expected a spec mapping"):
        prior.read_base(tmp_path / "list.yaml")
    with pytest.raises(AddropError, match="missing.yaml: cannot read the spec"):
        prior.read_base(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("data: [\n")
    with pytest.raises(AddropError, match="bad.yaml: not a valid spec file"):
        prior.read_base(tmp_path / "bad.yaml")


@pytest.mark.parametrize("rate", [0, 1, -0.2, float("nan")])
def test_a_rate_outside_0_1_is_refused_naming_it(rate):
    with pytest.raises(AddropError, match=r"--rate .*expected a share"):
        prior.prior_spec(BASE, rate=rate)


def test_the_arms_options_set_the_criterion_as_described(tmp_path):
    data = prepared_corpus(tmp_path)
    expected = {"random": ("random", 0.3, 0.3), "low": ("low", 0.3, 1.0), "high": ("high", 0.3, 1.0)}
    for name, options in prior.prior_arms(0.3).items():
        cfg, task, model, criterion = build(data, [*TAGGING, *options.split()])
        if name == "none":
            assert task.cfg.addrop_schedule == "off"
            continue
        settings = criterion.addrop_settings
        assert (settings.strategy, settings.p, settings.q) == expected[name]
        assert settings.attribution == "ga" and criterion.addrop_target == "gold"
        assert task.cfg.addrop_schedule == "always"
        assert [(m.kind, m.layer) for m in criterion._masked] == [("encoder_self", 0)]


SPEC = """\
data: {data}
train: >-
  --user-dir {plugin} --task addrop_tagging --criterion addrop_tagging --cpu
  --arch addrop_tagger_tiny --encoder-embed-dim 32 --encoder-ffn-embed-dim 64
  --optimizer adam --lr 3e-3 --max-tokens 800 --max-epoch 2 --num-workers 0
seeds: [1]
select: {{metric: f1, maximize: true}}
"""


def test_the_two_panels_draw_the_seed_means_per_epoch(tmp_path):
    from addrop_fairseq.experiment.plots import plot_loss_panels

    def run(seed, shift):
        return {"seed": seed, "epochs": [
            {"epoch": e, "train_loss": 2.0 - 0.2 * e + shift, "trainset_loss": 1.5 - 0.3 * e + shift,
             "valid_loss": 1.8 - 0.1 * e + shift} for e in (1, 2, 3)]}

    runs = {"none": [run(1, 0.0), run(2, 0.2)], "high": [run(1, 0.5)]}
    drawn = plot_loss_panels(runs, tmp_path / "p.png", "t")
    epochs, mean, low, high = drawn[(0, "none", "trainset_loss")]
    np.testing.assert_allclose(mean, [1.3, 1.0, 0.7])
    np.testing.assert_allclose(low, [1.2, 0.9, 0.6])
    np.testing.assert_allclose(high, [1.4, 1.1, 0.8])
    np.testing.assert_allclose(drawn[(1, "high", "valid_loss")][1], [2.2, 2.1, 2.0])
    assert set(drawn) == {(p, a, f) for a in runs for p, f in
                          ((0, "trainset_loss"), (0, "train_loss"), (1, "valid_loss"))}
    assert (tmp_path / "p.png").stat().st_size > 1000
    means = prior.epoch_means(runs)
    np.testing.assert_allclose(means["none"]["valid_loss"], [1.8, 1.7, 1.6])
    assert "| high | 1 | 2.000 (3) | 1.100 |" in prior.table(means, "f1")
