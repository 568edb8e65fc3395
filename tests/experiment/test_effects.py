"""The results summary (experiment/effects.py, plots.plot_forest, addrop-effects): paired
differences against a hand computation, the files the command writes, bad effects files, and the
committed docs/results/effects.md against what the committed results give."""
import json
import math

import pytest

from addrop_fairseq.cli import effects as command
from addrop_fairseq.errors import AddropError
from addrop_fairseq.experiment import effects
from conftest import REPO

T_975_1 = 12.706204736174698  # Student's t, 97.5% quantile, 1 degree of freedom
T_975_2 = 4.302652729749462  # ... 2 degrees of freedom


def spec(arms, **extra):
    return {"data": "d", "train": "--lr 1", "arms": arms, "baseline": "plain", "seeds": [1, 2, 3],
            "select": {"metric": "f1", "maximize": True}, "test": {"kind": "ner", "split": "test"},
            **extra}


def record(arm, seed, test, status="ok"):
    return {"arm": arm, "seed": seed, "status": status, "test_metric": test,
            "best": {"epoch": 1, "valid_metric": 50.0}, "epochs": []}


def study_dir(root, name, arms, records, **extra):
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "spec.json").write_text(json.dumps(spec(arms, **extra)))
    (directory / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


ARMS = {"plain": "--addrop-schedule off", "ga-p0.3-q0.3": "--addrop-schedule cross",
        "rd": "--addrop-schedule cross --addrop-attribution rd"}
RECORDS = [
    record("plain", 1, 70.0), record("plain", 2, 71.0), record("plain", 3, 72.0),
    record("ga-p0.3-q0.3", 1, 60.0),  # superseded by the seed's later finished record
    record("ga-p0.3-q0.3", 1, 71.0), record("ga-p0.3-q0.3", 2, 71.5),
    record("ga-p0.3-q0.3", 3, 74.0),
    record("rd", 1, 69.0), record("rd", 2, 72.0), record("rd", 3, None, status="failed"),
]


@pytest.fixture
def results(tmp_path):
    study_dir(tmp_path, "ner", ARMS, RECORDS)
    (tmp_path / "effects.yaml").write_text(
        "studies:\n"
        "  - {dir: ner, label: NER, setting: tiny, arms: {GA: [ga-p0.3-q0.3], RD: [rd]}}\n"
    )
    return tmp_path


def test_collect_gives_the_hand_computed_paired_differences(results):
    result = effects.collect(results / "effects.yaml")
    ga, rd = result.effects
    # GA minus plain over seeds 1-3: 1.0, 0.5, 2.0
    diffs = [1.0, 0.5, 2.0]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    half = T_975_2 * sd / math.sqrt(3)
    assert (ga.kind, ga.arm, ga.baseline, ga.difference.n) == ("GA", "ga-p0.3-q0.3", "plain", 3)
    assert ga.difference.mean == pytest.approx(7 / 6)
    assert (ga.difference.low, ga.difference.high) == pytest.approx((mean - half, mean + half))
    # RD minus plain over the two seeds it finished: -1.0, +1.0 (sd sqrt 2)
    assert (rd.kind, rd.difference.n, rd.difference.mean) == ("RD", 2, pytest.approx(0.0))
    assert (rd.difference.low, rd.difference.high) == pytest.approx((-T_975_1, T_975_1))
    assert (ga.metric, ga.unit) == ("test entity F1", "entity F1")
    assert (ga.row_label, rd.row_label) == ("GA p0.3-q0.3", "RD")
    assert result.not_yet_run == []


def test_command_writes_the_plot_and_the_table(results, capsys):
    markdown, plot = results / "out" / "effects.md", results / "img" / "effects.png"
    plot.parent.mkdir()
    assert command.main([str(results / "effects.yaml"), "--markdown", str(markdown),
                         "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = markdown.read_text()
    assert "| NER | tiny | test entity F1 | GA p0.3-q0.3 | +1.17 [-0.73, 3.06] | 3 |" in text
    assert "| | | | RD | +0.00 [-12.71, 12.71] | 2 |" in text
    assert sorted(p.name for p in results.rglob("*tmp*")) == []  # no temporary file left


def test_forest_plot_draws_each_row_in_its_units_panel(tmp_path):
    from addrop_fairseq.experiment import plots

    drawn = plots.plot_forest(
        {"F1": [("a", "GA", 1.0, -0.5, 2.5), ("b", "RD", -1.0, -2.0, 0.0)],
         "BLEU": [("c", "GA", 0.3, 0.1, 0.5)]},
        tmp_path / "forest.png",
    )
    assert drawn == {"F1": [("a", 1.0, -0.5, 2.5), ("b", -1.0, -2.0, 0.0)],
                     "BLEU": [("c", 0.3, 0.1, 0.5)]}
    assert (tmp_path / "forest.png").stat().st_size > 0


@pytest.mark.parametrize("entry, message", [
    ("{dir: ner-typo, label: X, setting: s, arms: {GA: [ga-p0.3-q0.3]}}", "'ner-typo'"),
    ("{dir: ner, label: X, setting: s, arms: {GA: [ga-p0.5]}}", "arm 'ga-p0.5' is not an arm"),
    ("{dir: ner, label: X, setting: s, arms: {XX: [rd]}}", "'XX' is not one of GA, RD"),
    ("{dir: ner, label: X, arms: {GA: [rd]}}", "no 'setting'"),
])
def test_a_bad_study_or_arm_is_one_error_naming_it(results, entry, message):
    (results / "effects.yaml").write_text(f"studies:\n  - {entry}\n")
    with pytest.raises(AddropError, match=message):
        effects.collect(results / "effects.yaml")


def test_a_failed_run_leaves_an_arm_too_few_seeds(results):
    study_dir(results, "one", ARMS, [record("plain", 1, 70.0), record("rd", 1, 71.0)])
    (results / "effects.yaml").write_text(
        "studies:\n  - {dir: one, label: One, setting: s, arms: {RD: [rd]}}\n")
    with pytest.raises(AddropError, match="'one': arm 'rd' minus 'plain'.*fewer than 2 seeds"):
        effects.collect(results / "effects.yaml")


def test_a_planned_study_waits_for_its_results(results):
    study_dir(results, "glue/partial", ARMS, [record("plain", 1, 70.0), record("rd", 1, 71.0)])
    (results / "effects.yaml").write_text(
        "studies:\n"
        "  - {dir: ner, label: NER, setting: s, arms: {GA: [ga-p0.3-q0.3]}}\n"
        "  - {dir: glue/absent, label: Absent, setting: s, arms: {GA: [ga]}, planned: true}\n"
        "  - {dir: glue/partial, label: Partial, setting: s, arms: {GA: [ga-p0.3-q0.3], "
        "RD: [rd]}, planned: true}\n"
    )
    result = effects.collect(results / "effects.yaml")
    assert [e.study for e in result.effects] == ["NER"]
    assert result.not_yet_run == ["Absent", "Partial (ga-p0.3-q0.3, rd)"]
    assert "Planned, not yet run: Absent; Partial (ga-p0.3-q0.3, rd)." in (
        effects.effects_markdown(result, "cmd"))


def test_the_committed_summary_is_what_the_committed_results_give():
    """docs/results/effects.md cannot go stale: a new study, or a change in any results.jsonl it
    reads, fails here until `addrop-effects` is rerun."""
    expected = effects.effects_markdown(
        effects.collect(REPO / "docs/results/effects.yaml"),
        "addrop-effects docs/results/effects.yaml --markdown docs/results/effects.md "
        "--plot docs/img/effects.png",
    )
    assert (REPO / "docs/results/effects.md").read_text(encoding="utf-8") == expected


def test_the_readme_shows_the_committed_summary_table():
    table = [line for line in (REPO / "docs/results/effects.md").read_text().splitlines()
             if line.startswith("|")]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "\n".join(table) in readme
    assert "](docs/img/effects.png)" in readme


def grid_record(arm, seed, selection, reported):
    return {"arm": arm, "seed": seed, "status": "ok", "test_metric": reported,
            "best": {"epoch": 1, "valid_metric": selection},
            "epochs": [{"epoch": 1, "valid_metric": selection, "report_metric": reported}]}


def test_a_grid_shows_the_cell_the_held_out_protocol_chooses(results):
    grid = {"options": "--addrop-schedule cross", "p": [0.1, 0.5], "q": [0.1]}
    study_dir(results, "glue/grid", {"plain": "--addrop-schedule off"}, [
        grid_record("plain", 1, 60, 50), grid_record("plain", 2, 61, 52),
        # chosen on the selection split (mean 79.5) though the other cell reports more
        grid_record("p0.1-q0.1", 1, 80, 49), grid_record("p0.1-q0.1", 2, 79, 48),
        grid_record("p0.5-q0.1", 1, 70, 60), grid_record("p0.5-q0.1", 2, 71, 61),
    ], grid=grid, report_split="test", test={"kind": "none"})
    (results / "effects.yaml").write_text(
        "studies:\n  - {dir: glue/grid, label: Grid, setting: s, arms: {GA: [held-out choice]}}\n")
    (effect,) = effects.collect(results / "effects.yaml").effects
    assert (effect.arm, effect.row_label) == ("p0.1-q0.1", "GA p0.1-q0.1")
    assert effect.difference.mean == pytest.approx(-2.5)  # 49 - 50, 48 - 52
    # without a grid there is nothing to choose from
    (results / "effects.yaml").write_text(
        "studies:\n  - {dir: ner, label: N, setting: s, arms: {GA: [held-out choice]}}\n")
    with pytest.raises(AddropError, match="'held-out choice' needs a spec with a p x q grid"):
        effects.collect(results / "effects.yaml")
