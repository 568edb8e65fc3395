"""The comparison runner's library parts: spec, log parsing, paired statistics, report, plots."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from addrop_fairseq.errors import AddropError
from addrop_fairseq.experiment import logs, plots, stats
from addrop_fairseq.experiment.runner import Comparison, fingerprint, latest, read_results
from addrop_fairseq.experiment.spec import build_spec, expand_grid, parse_grid_flag

BASE = {
    "data": "d",
    "train": "--task addrop_tagging",
    "arms": {"plain": "--addrop-schedule off"},
    "seeds": [1, 2, 3],
    "select": {"metric": "f1", "maximize": True},
}


def test_paired_difference_matches_a_hand_computation():
    arm = {1: 80.0, 2: 82.0, 3: 79.0, 4: 81.5}
    base = {1: 79.0, 2: 82.5, 3: 77.0, 4: 80.0, 5: 90.0}  # seed 5 has no pair: left out
    paired = stats.paired_difference(arm, base)
    # differences 1.0, -0.5, 2.0, 1.5: mean 1.0, sd sqrt(((0)^2+1.5^2+1^2+0.5^2)/3) = sqrt(3.5/3)
    sd = math.sqrt(3.5 / 3)
    half = 3.182446305284263 * sd / 2  # t_{0.975, 3} * sd / sqrt(4)
    assert paired.n == 4 and paired.mean == pytest.approx(1.0)
    assert paired.low == pytest.approx(1.0 - half) and paired.high == pytest.approx(1.0 + half)
    assert (paired.wins, paired.losses, paired.ties) == (3, 1, 0)
    assert stats.mean_std([1.0, 2.0, 4.0]) == pytest.approx((7 / 3, math.sqrt(7 / 3)))
    single = stats.paired_difference({1: 2.0}, {1: 1.0})
    assert single.mean == 1.0 and math.isnan(single.low)
    assert stats.paired_difference({1: 2.0}, {2: 1.0}) is None


def test_paired_p_value_matches_a_hand_computation():
    # differences 1.0, -0.5, 2.0, 1.5 (as above): t = 1.0 / (sqrt(3.5 / 3) / 2) = 1.8516 on 3
    # degrees of freedom, whose CDF has a closed form: 1/2 + (x / (1 + x^2) + atan(x)) / pi with
    # x = t / sqrt(3); two-sided p = 2 * (1 - CDF(t)) = 0.1611
    t = 1.0 / (math.sqrt(3.5 / 3) / 2)
    x = t / math.sqrt(3)
    p = 2 * (1 - (0.5 + (x / (1 + x * x) + math.atan(x)) / math.pi))
    assert p == pytest.approx(0.1611, abs=1e-4)
    paired = stats.paired_difference(
        {1: 80.0, 2: 82.0, 3: 79.0, 4: 81.5}, {1: 79.0, 2: 82.5, 3: 77.0, 4: 80.0}
    )
    assert paired.p == pytest.approx(p, rel=1e-9)
    # the p-value is below 0.05 exactly where the 95% interval leaves out 0
    narrow = stats.paired_difference({1: 2.0, 2: 2.2, 3: 1.9}, {1: 1.0, 2: 1.0, 3: 1.0})
    assert narrow.low > 0 and narrow.p < 0.05
    assert stats.paired_difference({1: 2.0, 2: 3.0}, {1: 1.0, 2: 2.0}).p == 0.0  # no spread
    assert stats.paired_difference({1: 2.0, 2: 3.0}, {1: 2.0, 2: 3.0}).p == 1.0
    assert math.isnan(stats.paired_difference({1: 2.0}, {1: 1.0}).p)


def test_holm_adjustment_matches_a_hand_computation():
    # p = 0.01, 0.04, 0.03, 0.20 (m = 4). Sorted: 0.01, 0.03, 0.04, 0.20, multiplied by
    # 4, 3, 2, 1: 0.04, 0.09, 0.08, 0.20. Step-down keeps the order: 0.08 is raised to the 0.09
    # before it. Back in the given order: 0.04, 0.09, 0.09, 0.20.
    assert stats.holm_adjusted([0.01, 0.04, 0.03, 0.20]) == pytest.approx([0.04, 0.09, 0.09, 0.20])
    # p = 0.6, 0.01, 0.7 (m = 3): 0.01 * 3 = 0.03; 0.6 * 2 = 1.2, capped at 1; 0.7 * 1 = 0.7,
    # raised to the 1 before it.
    assert stats.holm_adjusted([0.6, 0.01, 0.7]) == pytest.approx([1.0, 0.03, 1.0])
    assert stats.holm_adjusted([0.02]) == [0.02] and stats.holm_adjusted([]) == []
    with pytest.raises(AddropError, match="nan is not a p-value"):
        stats.holm_adjusted([0.1, math.nan])


def test_welch_difference_matches_a_hand_computation():
    from scipy import stats as scipy_stats

    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0]
    # means 2 and 5; variances of the means 1/3 and (20/3)/4 = 5/3; se = sqrt(2)
    dof = 4 / ((1 / 3) ** 2 / 2 + (5 / 3) ** 2 / 3)  # Welch-Satterthwaite
    half = scipy_stats.t.ppf(0.975, dof) * math.sqrt(2)
    diff = stats.welch_difference(a, b)
    assert (diff.n_a, diff.n_b) == (3, 4) and diff.mean == pytest.approx(-3.0)
    assert diff.low == pytest.approx(-3.0 - half) and diff.high == pytest.approx(-3.0 + half)
    reference = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (diff.low, diff.high) == pytest.approx((reference.low, reference.high))
    assert diff.p == pytest.approx(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert math.isnan(stats.welch_difference([1.0], [2.0, 3.0]).low)
    assert math.isnan(stats.welch_difference([], [2.0]).mean)


def test_masked_minus_unmasked_averages_each_phase_by_hand():
    record = {
        "epochs": [
            {"epoch": 1, "addrop": 0.0, "train_loss": 3.0, "trainset_loss": 2.5},
            {"epoch": 2, "addrop": 1.0, "train_loss": 2.8, "trainset_loss": 2.0},
            {"epoch": 3, "addrop": 0.0, "train_loss": 2.1, "trainset_loss": 1.9},
            {"epoch": 4, "addrop": 1.0, "train_loss": 2.0, "trainset_loss": 1.6},
            {"epoch": 5, "addrop": 1.0, "train_loss": 1.9},  # no training-split pass: left out
        ]
    }
    masked, n = stats.masked_minus_unmasked(record, addrop_epochs=True)
    assert n == 2 and masked == pytest.approx((0.8 + 0.4) / 2)
    plain, n = stats.masked_minus_unmasked(record, addrop_epochs=False)
    assert n == 2 and plain == pytest.approx((0.5 + 0.2) / 2)
    assert stats.masked_minus_unmasked({"epochs": record["epochs"][:1]}, True) == (None, 0)


def test_grid_expands_into_named_arms():
    arms = expand_grid({"options": "--addrop-schedule cross", "p": [0.1, 0.5], "q": [0.3]})
    assert [a.name for a in arms] == ["p0.1-q0.3", "p0.5-q0.3"]
    assert arms[1].options == (
        "--addrop-schedule",
        "cross",
        "--addrop-p",
        "0.5",
        "--addrop-q",
        "0.3",
    )
    assert arms[1].grid == {"p": 0.5, "q": 0.3}
    assert parse_grid_flag("p=0.1,0.3 q=0.1") == {"p": [0.1, 0.3], "q": [0.1]}
    spec = build_spec({**BASE, "grid": {"p": [0.1], "q": [0.1, 0.9]}})
    assert [a.name for a in spec.arms] == ["plain", "p0.1-q0.1", "p0.1-q0.9"]
    assert spec.baseline == "plain"
    # the spec.json a run freezes keeps the grid, so the reports still know its cells
    frozen = build_spec(json.loads(json.dumps(spec.to_dict())))
    assert frozen.to_dict() == spec.to_dict() and list(spec.to_dict()["arms"]) == ["plain"]
    assert [(a.name, a.options, a.grid) for a in frozen.arms] == [
        (a.name, a.options, a.grid) for a in spec.arms]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"seeds": [1, 1]}, "seeds"),
        ({"seeds": "1"}, "seeds"),
        ({"baseline": "ga"}, "'ga' is not an arm"),
        ({"arms": {}}, "no arms"),
        ({"epochs": 3}, "unknown field(s) epochs"),
        ({"test": {"kind": "bleu"}}, "test.kind: 'bleu'"),
        ({"grid": {"p": 0.3}}, "grid.p"),
        ({"arms": {"a": "--x 'unclosed"}}, "arms.a"),
        ({"data": None}, "data"),
    ],
)
def test_spec_errors_name_the_field_and_value(change, message):
    with pytest.raises(AddropError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_spec({**BASE, **change})
    with pytest.raises(AddropError, match="KEY=V1"):
        parse_grid_flag("p0.1")


LOG = """\
2026-01-01 00:00:01 | INFO | train_inner | {"epoch": 1, "update": 0.5, "loss": "3.0"}
2026-01-01 00:00:02 | INFO | valid | {"epoch": 1, "valid_loss": "1.5", "valid_f1": "60.5", "valid_num_updates": "13"}
2026-01-01 00:00:03 | INFO | trainset | {"epoch": 1, "trainset_loss": "1.25", "trainset_f1": "70"}
2026-01-01 00:00:04 | INFO | train | {"epoch": 1, "train_loss": "2.0", "train_addrop": "0", "train_addrop_drop": "0", "train_lr": "1e-4", "train_wall": "20"}
2026-01-01 00:00:05 | INFO | valid | {"epoch": 2, "valid_loss": "1.2", "valid_f1": "71.0", "valid_num_updates": "26"}
2026-01-01 00:00:06 | INFO | train | {"epoch": 2, "train_loss": "1.8", "train_addrop": "1", "train_addrop_drop": "0.09", "train_lr": "5e-5", "train_wall": "45"}
### resumed
2026-01-01 00:01:05 | INFO | valid | {"epoch": 2, "valid_loss": "1.1", "valid_f1": "72.0", "valid_num_updates": "26"}
2026-01-01 00:01:06 | INFO | valid | {"epoch": 3, "valid_loss": "1.3", "valid_f1": "72.0", "valid_num_updates": "39"}
2026-01-01 00:01:07 | INFO | valid | {"epoch": 4, "valid_loss": "nan", "valid_f1": "40"}
"""


def test_log_parsing_keeps_the_last_record_of_an_epoch_and_picks_fairseqs_best():
    epochs = logs.parse_epochs(LOG, "f1")
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4]
    assert epochs[0] == {
        "epoch": 1,
        "valid_loss": 1.5,
        "valid_metric": 60.5,
        "num_updates": 13.0,
        "trainset_loss": 1.25,
        "trainset_metric": 70.0,
        "train_loss": 2.0,
        "addrop": 0.0,
        "addrop_drop": 0.0,
        "train_wall": 20.0,
    }
    assert epochs[1]["valid_metric"] == 72.0 and epochs[1]["addrop_drop"] == 0.09  # resumed copy
    assert epochs[3]["valid_loss"] is None  # nan is no number
    # fairseq keeps the later epoch on a tie (>=): epoch 3, not 2
    assert logs.best_epoch(epochs, maximize=True)["epoch"] == 3
    assert logs.best_epoch(epochs, maximize=False)["epoch"] == 4
    assert logs.best_epoch([], True) is None


def _record(spec, arm, seed, dev, test, status="ok"):
    epochs = [
        {
            "epoch": e,
            "valid_metric": dev - 3 + e,
            "valid_loss": 1.0 / e,
            "train_loss": 2.0 / e,
            "trainset_loss": 0.5 / e,
        }
        for e in (1, 2, 3)
    ]
    return {
        "arm": arm.name,
        "seed": seed,
        "fingerprint": fingerprint(spec, arm, seed),
        "status": status,
        "epochs": epochs,
        "best": epochs[-1],
        "test_metric": test,
        "wall_s": 60.0 * (2 if arm.grid else 1),
        "train_cpu_s": 30.0 * (3 if arm.grid else 1),
        "grid": arm.grid,
        "error": "boom" if status != "ok" else None,
    }


def test_report_writes_summary_curves_and_heatmaps(tmp_path):
    spec = build_spec(
        {**BASE, "grid": {"options": "--addrop-schedule cross", "p": [0.1, 0.5], "q": [0.3, 0.9]}}
    )
    comparison = Comparison(spec, tmp_path / "out")
    (tmp_path / "out").mkdir()
    records = []
    for seed in (1, 2, 3):
        for index, arm in enumerate(spec.arms):
            records.append(_record(spec, arm, seed, 70.0 + index + seed, 60.0 + 2 * index + seed))
    records.append(
        _record(spec, spec.arms[1], 3, 0, 0, status="failed")
    )  # later: replaces the ok one
    stale = dict(records[0], fingerprint="0" * 16, test_metric=999.0)  # another spec's run
    with open(comparison.results_path, "w") as f:
        f.write("\n".join(json.dumps(r) for r in records + [stale]) + '\n{"cut short')
    assert len(read_results(comparison.results_path)) == len(records) + 1
    assert len(latest(read_results(comparison.results_path), spec)) == 5 * 3
    comparison.report()
    summary = (tmp_path / "out" / "summary.md").read_text()
    # best = last epoch (3): dev loss 1/3 minus training-set loss 0.5/3
    assert (
        "| plain | 3/3 | 72.00 +- 1.00 | 62.00 +- 1.00 | 3.00 +- 0.00 | 0.17 +- 0.00 / 0.17 +- 0.00 |"
        in summary
    )
    # p0.1-q0.9 (arm index 2): dev +2, test +4 on every seed, so the interval is a point
    assert (
        "| p0.1-q0.9 | 3 | +2.00 [2.00, 2.00] | +4.00 [4.00, 4.00] | 3/0/0 | 2.00x / 3.00x |"
        in summary
    )
    # no epoch is marked AD-DROP in these records; every epoch's 2/e - 0.5/e, averaged: 0.5 * 11/6
    assert "| plain | n/a | 0.917 +- 0.000 |" in summary
    assert "| p0.1-q0.3 | 2 |" in summary and "- p0.1-q0.3 seed 3: boom" in summary
    assert "999" not in summary
    for name in ("curves.png", "heatmap_dev.png", "heatmap_test.png"):
        image = plt_image(tmp_path / "out" / name)
        assert image.shape[0] > 100 and image.shape[1] > 100 and np.ptp(image) > 0
    assert not list((tmp_path / "out").glob("*.tmp*"))


def _compare_main():
    """The main() of the comparison command (addrop-compare)."""
    from addrop_fairseq.cli.compare import main

    return main


def test_report_only_against_another_baseline_writes_its_own_summary(tmp_path, capsys):
    raw = {**BASE, "arms": {"plain": "--addrop-schedule off", "ga": "--a 1", "rd": "--a 2"}}
    (tmp_path / "spec.json").write_text(json.dumps(raw))
    spec = build_spec(raw)
    out = tmp_path / "out"
    out.mkdir()
    rd_test_over_plain = {1: 0.5, 2: 1.0, 3: 1.5}
    records = []
    for seed in (1, 2, 3):
        plain, ga, rd = spec.arms
        records.append(_record(spec, plain, seed, 70.0 + seed, 60.0 + seed))
        records.append(_record(spec, ga, seed, 72.0 + seed, 62.0 + seed))
        records.append(_record(spec, rd, seed, 71.0 + seed, 60.0 + seed + rd_test_over_plain[seed]))
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    main = _compare_main()

    assert main([str(tmp_path / "spec.json"), "--out", str(out), "--report-only",
                 "--baseline", "rd"]) == 0
    assert capsys.readouterr().out.strip() == f"compare: {out / 'summary-vs-rd.md'}"
    against_rd = (out / "summary-vs-rd.md").read_text()
    assert "Paired against `rd`" in against_rd
    # ga minus rd: dev +1 on every seed; test 1.5, 1.0, 0.5: mean 1.0, sd 0.5,
    # half-width t_{0.975, 2} * 0.5 / sqrt(3) = 4.3027 * 0.2887 = 1.2421
    assert "| ga | 3 | +1.00 [1.00, 1.00] | +1.00 [-0.24, 2.24] | 3/0/0 |" in against_rd
    assert "| plain | 3 | -1.00 [-1.00, -1.00] | -1.00 [-2.24, 0.24] | 0/3/0 |" in against_rd
    assert not [line for line in against_rd.splitlines() if line.startswith("| rd |") and "[" in line]
    assert sorted(p.name for p in out.iterdir()) == ["results.jsonl", "summary-vs-rd.md"]

    assert main([str(tmp_path / "spec.json"), "--out", str(out), "--report-only"]) == 0
    assert "Paired against `plain`" in (out / "summary.md").read_text()
    assert (out / "summary-vs-rd.md").read_text() == against_rd  # left as it was
    capsys.readouterr()

    with pytest.raises(AddropError, match=r"^--baseline: 'RD' is not an arm of the spec "
                                          r"\(plain, ga, rd\)$"):
        main([str(tmp_path / "spec.json"), "--out", str(out), "--report-only", "--baseline", "RD"])
    assert not (out / "summary-vs-RD.md").exists()


def test_family_file_gives_each_comparison_its_p_and_holm_p(tmp_path):
    from addrop_fairseq.cli.holm import main as holm_main
    from addrop_fairseq.experiment import families

    spec = build_spec({**BASE, "arms": {"plain": "--a 0", "ga": "--a 1"}})
    plain, ga = spec.arms
    ga_test_gain = {1: 1.0, 2: -0.5, 3: 2.0, 4: 1.5}  # the differences worked by hand above
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "results.jsonl").write_text("".join(
        json.dumps(_record(spec, arm, seed, 70.0 + (arm is ga) * 2.0,
                           60.0 + (ga_test_gain[seed] if arm is ga else 0.0))) + "\n"
        for seed in (1, 2, 3, 4) for arm in (plain, ga)
    ))
    (tmp_path / "families.yaml").write_text(
        "studies:\n"
        "  - name: toy\n"
        "    why: ga against plain\n"
        "    contrasts:\n"
        "      - {arms: [study/ga], baseline: study/plain, quantities: [dev, test, gap_last],\n"
        "         primary: [test]}\n"
    )
    study = families.load_families(tmp_path / "families.yaml")[0]
    rows = families.evaluate_study(study, families.Runs(tmp_path))
    dev, test, gap = rows
    # dev +2 on every seed: p 0; the loss gap is the same in both arms (_record): p 1;
    # test p 0.1611 (test_paired_p_value_matches_a_hand_computation). Holm over the three:
    # sorted 0, 0.1611, 1 times 3, 2, 1: 0, 0.3222, 1. Over the primary one alone: 0.1611.
    assert (dev.difference.p, gap.difference.p) == (0.0, 1.0)
    assert test.difference.p == pytest.approx(0.1611, abs=1e-4)
    assert [r.holm_p for r in rows] == pytest.approx([0.0, 2 * test.difference.p, 1.0])
    assert test.primary and test.primary_holm_p == test.difference.p
    assert not dev.primary and math.isnan(dev.primary_holm_p)
    assert holm_main([str(tmp_path / "families.yaml"), "--out", str(tmp_path / "holm.md")]) == 0
    text = (tmp_path / "holm.md").read_text()
    assert "### toy: 3 comparisons, 1 primary" in text
    # half-width 3.1824 * 0.5401 = 1.7188 (the hand computation above)
    assert (
        "| study/ga minus study/plain | test metric | 4 | +1.00 [-0.72, 2.72] | 0.161 | 0.161 "
        "| 0.322 |" in text
    )

    (tmp_path / "families.yaml").write_text(
        "studies:\n  - name: toy\n    contrasts:\n"
        "      - {arms: [study/ga], baseline: study/plain, quantities: [bleu]}\n"
    )
    with pytest.raises(AddropError, match="quantity 'bleu' is not known"):
        families.load_families(tmp_path / "families.yaml")
    (tmp_path / "families.yaml").write_text(
        "studies:\n  - name: toy\n    contrasts:\n"
        "      - {arms: [gone/ga], baseline: study/plain, quantities: [dev]}\n"
    )
    with pytest.raises(AddropError, match="gone/results.jsonl: no such results file"):
        holm_main([str(tmp_path / "families.yaml")])


def test_family_quantities_read_both_protocols_of_a_glue_run(tmp_path):
    from addrop_fairseq.experiment import families

    run = {"test_metric": 55.0, "epochs": [
        {"epoch": 1, "valid_metric": 60.0, "report_metric": 50.0},
        {"epoch": 2, "valid_metric": 60.0, "report_metric": 55.0},  # the tie goes to the later
        {"epoch": 3, "valid_metric": 58.0, "report_metric": 57.0},
    ]}
    assert families.quantity("test")[2](run) == 55.0  # the held-out epoch, 2
    assert families.quantity("paper")[2](run) == 57.0  # epoch 3, best on the report split
    assert families.quantity("optimism")[2](run) == 2.0
    # a reference loop's file in the runner's record shape is read as it is
    (tmp_path / "ref.jsonl").write_text(
        json.dumps({"seed": 1, "best": {"epoch": 2, "valid_metric": 60.0}, **run}) + "\n")
    (reference,) = families.Runs(tmp_path).by_seed("ref.jsonl").values()
    assert families.quantity("paper")[2](reference) == 57.0
    (tmp_path / "flat.jsonl").write_text(json.dumps({"seed": 1, "dev": 60.0, "test": 55.0}) + "\n")
    (flat,) = families.Runs(tmp_path).by_seed("flat.jsonl").values()
    assert (families.quantity("dev")[2](flat), families.quantity("test")[2](flat)) == (60.0, 55.0)
    no_report = {"epochs": [{"epoch": 1, "valid_metric": 60.0}]}
    assert families.quantity("paper")[2](no_report) is None
    assert families.quantity("optimism")[2](no_report) is None


def test_committed_holm_tables_are_what_the_committed_results_give():
    """docs/results/holm.md, which docs/results.md quotes, is regenerated from the committed
    results.jsonl files: a changed record or family that was not carried into it fails here."""
    from pathlib import Path

    from addrop_fairseq.experiment import families

    from conftest import REPO

    results = REPO / "docs" / "results"
    committed = (results / "holm.md").read_text().split("\n\n", 1)[1]  # after the header line
    assert families.families_markdown(results / "families.yaml") == committed


def plt_image(path):
    import matplotlib.image

    assert path.stat().st_size > 1000
    return matplotlib.image.imread(path)


def test_plotted_numbers_are_the_seed_mean_and_range(tmp_path):
    runs = {
        "plain": [
            {
                "epochs": [
                    {"epoch": 1, "valid_metric": 50.0, "valid_loss": 2.0, "train_loss": 1.0},
                    {"epoch": 2, "valid_metric": 60.0, "valid_loss": 1.5, "train_loss": 0.5},
                ]
            },
            {
                "epochs": [
                    {"epoch": 1, "valid_metric": 54.0, "valid_loss": 2.2, "train_loss": 1.0},
                    {"epoch": 2, "valid_metric": None, "valid_loss": 1.7, "train_loss": 0.7},
                ]
            },
        ]
    }
    drawn = plots.plot_curves(runs, "f1", tmp_path / "c.png")
    epochs, mean, low, high = drawn[(0, "plain", "valid_metric")]
    assert list(epochs) == [1, 2] and list(mean) == [52.0, 60.0] and list(low) == [50.0, 60.0]
    gap = drawn[(2, "plain", "gap")]
    assert np.allclose(gap[1], [1.1, 1.0]) and np.allclose(gap[3], [1.2, 1.0])
    assert all(np.isfinite(np.concatenate(series[1:])).all() for series in drawn.values())
    assert not any(panel == 3 for panel, _, _ in drawn)  # no reported split, no fourth panel
    runs["plain"][0]["epochs"][0]["report_metric"] = 40.0
    runs["plain"][1]["epochs"][0]["report_metric"] = 48.0
    drawn = plots.plot_curves(runs, "f1", tmp_path / "c.png", report_split="test")
    epochs, mean, low, high = drawn[(3, "plain", "report_metric")]
    assert list(epochs) == [1] and list(mean) == [44.0] and (low[0], high[0]) == (40.0, 48.0)
    assert drawn[(0, "plain", "valid_metric")][1][0] == 52.0  # the dev panel is unchanged
    grid = plots.plot_heatmap(
        {(0.1, 0.3): 1.0, (0.5, 0.3): -2.0, (0.5, 0.9): 0.5}, tmp_path / "h.png", "t"
    )
    assert grid.shape == (2, 2) and grid[1, 0] == -2.0 and math.isnan(grid[0, 1])


def test_a_second_runner_on_the_same_directory_is_refused(tmp_path):
    spec = build_spec(BASE)
    first = Comparison(spec, tmp_path / "out")
    (tmp_path / "out").mkdir()
    held = first._lock_out_dir()
    try:
        with pytest.raises(AddropError, match="another addrop-compare is running"):
            Comparison(spec, tmp_path / "out").run()
    finally:
        held.close()
    assert Comparison(spec, tmp_path / "out").pending()  # free again once released


def test_heatmap_titles_name_the_dev_and_the_test_metric(tmp_path, monkeypatch):
    spec = build_spec(
        {
            **BASE,
            "test": {"kind": "ner", "split": "test"},
            "grid": {"options": "--addrop-schedule cross", "p": [0.1], "q": [0.3, 0.9]},
        }
    )
    comparison = Comparison(spec, tmp_path / "out")
    (tmp_path / "out").mkdir()
    records = [
        _record(spec, arm, seed, 70.0 + i, 60.0 + i)
        for seed in (1, 2)
        for i, arm in enumerate(spec.arms)
    ]
    comparison.results_path.write_text("".join(json.dumps(r) + "\n" for r in records))
    titles = []
    real = plots.plot_heatmap

    def recording(gains, path, title, **kw):
        titles.append(title)
        return real(gains, path, title, **kw)

    monkeypatch.setattr(plots, "plot_heatmap", recording)
    comparison.report()
    assert titles == [
        "dev F1: mean gain over plain (paired)",
        "test entity F1: mean gain over plain (paired)",
    ]
    assert stats.test_metric_name(build_spec(BASE)) == "none"


def test_metrics_are_named_as_a_reader_writes_them():
    cola = build_spec({**BASE, "test": {"kind": "glue", "metric": "mcc"}})
    assert stats.test_metric_name(cola) == "MCC"
    held_out = build_spec({**BASE, "select": {"metric": "pearson", "maximize": True},
                           "report_split": "test"})
    assert stats.test_metric_name(held_out) == "Pearson r"
    assert stats.metric_label("accuracy") == "accuracy"


# A stand-in for fairseq-train: burns some CPU, lets the runner sample it, prints what the runner
# had saved of this attempt meanwhile, then logs one dev epoch as fairseq's JSON log would.
FAKE_TRAIN = r"""
import json, os, sys, time
save_dir = sys.argv[sys.argv.index("--save-dir") + 1]
end = time.process_time() + 0.6
while time.process_time() < end:
    pass
time.sleep(0.5)
with open(os.path.join(os.path.dirname(save_dir), "attempts.json")) as f:
    print("saved while training:", f.read().strip())
print("x | INFO | valid | " + json.dumps({"epoch": 1, "valid_loss": "1.0", "valid_f1": "50.0"}))
"""


def _fake_comparison(tmp_path, monkeypatch):
    comparison = Comparison(build_spec(BASE), tmp_path / "out", work_dir=tmp_path / "runs")
    comparison.sample_s = 0.1
    monkeypatch.setattr(
        comparison,
        "train_command",
        lambda arm, seed, save_dir, data=None: [sys.executable, "-c", FAKE_TRAIN, "--save-dir",
                                                str(save_dir)],
    )
    run_dir = tmp_path / "runs" / "plain" / "seed1"
    (run_dir / "checkpoints").mkdir(parents=True)
    return comparison, run_dir


def test_time_means_leave_out_runs_that_count_only_their_last_attempt():
    spec = build_spec(BASE)
    plain = spec.arms[0]
    complete = [_record(spec, plain, seed, 70.0, 60.0) for seed in (1, 2)]
    # written before attempts.json existed: resumed, 5 s counted of a run that took far longer
    partial = dict(_record(spec, plain, 3, 70.0, 60.0), resumed=True, wall_s=5.0, train_cpu_s=3.0)
    summary = stats.summarise(spec, complete + [partial], True)
    # 60 s / 30 s, the two complete runs' mean (with the partial one it would read 0.7 / 0.4)
    assert "| plain | 3/3 | 70.00 +- 0.00 |" in summary
    assert "/ 0.17 +- 0.00 | 1.0 / 0.5 min |" in summary
    marked = "| plain | 3 | 3 | 70.00 | 60.00 | 0.1 / 0.1 min (resumed; last attempt only) |"
    assert marked in summary
    assert "left out of the time means" in summary
    assert "left out" not in stats.summarise(spec, complete, True)


def test_an_unledgered_resume_is_complete_only_if_fairseqs_clock_never_restarted():
    spec = build_spec(BASE)
    plain = spec.arms[0]

    def resumed(train_walls, wall_s):
        record = dict(_record(spec, plain, 1, 70.0, 60.0), resumed=True, wall_s=wall_s)
        record["epochs"] = [dict(e, train_wall=w) for e, w in zip(record["epochs"], train_walls)]
        return record

    # one attempt trained epochs 1-3 (a pause of 30 s inside epoch 2 included): complete
    assert stats.times_complete(resumed([20.0, 70.0, 90.0], 100.0))
    # fairseq resumed after epoch 2 and its clock restarted: the first attempt is missing
    assert not stats.times_complete(resumed([20.0, 40.0, 20.0], 100.0))
    # resumed after the last epoch: the timed attempt is shorter than the clock it inherited
    assert not stats.times_complete(resumed([20.0, 40.0, 60.0], 8.0))
    # no clock in the log: nothing is known
    assert not stats.times_complete(resumed([20.0, None, 60.0], 100.0))
    # the runner's own ledger decides where there is one
    assert not stats.times_complete(dict(resumed([20.0, 40.0, 60.0], 100.0), times_complete=False))
