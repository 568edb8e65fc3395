"""docs/results.md's GLUE tables (experiment/protocol_report.py, addrop-protocol-report): every run
under both protocols and the paired gains against a hand computation, the paper's rows, planned
studies, bad entries, the markers, and the committed document against the committed results."""
import json
from pathlib import Path

import pytest

from addrop_fairseq.cli import protocol_report as command
from addrop_fairseq.errors import AddropError
from addrop_fairseq.experiment import protocol_report
from conftest import REPO

T_975_1 = 12.706204736174698  # Student's t, 97.5% quantile, 1 degree of freedom


def run(arm, seed, valid, report, cpu=60.0):
    epochs = [{"epoch": e, "valid_metric": v, "report_metric": r}
              for e, (v, r) in enumerate(zip(valid, report), 1)]
    return {"arm": arm, "seed": seed, "status": "ok", "epochs": epochs, "code": "abcdef0123",
            "train_cpu_s": cpu, "wall_s": cpu + 6}


SPEC = {"data": "d", "train": "--lr 1", "baseline": "plain", "seeds": [1, 2],
        "arms": {"plain": "--addrop-schedule off", "ga": "--addrop-schedule cross"},
        "select": {"metric": "accuracy", "maximize": True}, "report_split": "test"}
RECORDS = [
    run("plain", 1, [60, 70, 65], [50, 55, 58]),  # held-out: epoch 2 -> 55; paper's: epoch 3 -> 58
    run("plain", 2, [62, 62, 61], [52, 51, 53]),  # held-out: epoch 2 (tie: later) -> 51; 3 -> 53
    run("ga", 1, [61, 66, 72], [60, 57, 56]),  # held-out 56 (3); paper's 60 (1)
    run("ga", 2, [70, 64, 63], [54, 59, 50]),  # held-out 54 (1); paper's 59 (2)
]
PAPER = "{source: Table 5, model: RoBERTa-base, plain: [91.44, 0.17], addrop: [92.61, 0.13]}"


@pytest.fixture
def results(tmp_path):
    study = tmp_path / "glue" / "sst2"
    study.mkdir(parents=True)
    (study / "spec.json").write_text(json.dumps(SPEC))
    (study / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    ner = tmp_path / "ner"  # a study without a report split: not in this report
    ner.mkdir()
    (ner / "spec.json").write_text(json.dumps(dict(SPEC, report_split=None)))
    (ner / "results.jsonl").write_text(json.dumps(RECORDS[0]) + "\n")
    (tmp_path / "effects.yaml").write_text(
        "studies:\n"
        "  - {dir: ner, label: NER, setting: tiny, arms: {GA: [ga]}}\n"
        "  - {dir: glue/sst2, label: SST-2 16-shot, setting: sixteen, metric: dev accuracy,\n"
        "     arms: {GA: [ga]}, spec: examples/sst2.yaml, paper: [" + PAPER + "]}\n"
        "  - {dir: glue/rte, label: RTE, setting: full, arms: {GA: [ga]}, planned: true,\n"
        "     spec: examples/rte.yaml, paper_note: lost in the copy}\n"
    )
    return tmp_path


def test_every_run_and_the_gains_match_the_hand_computation(results):
    studies = protocol_report.collect(results / "effects.yaml")
    assert [s.label for s in studies] == ["SST-2 16-shot", "RTE"]
    text = protocol_report.report(studies, "cmd")
    assert "| 1 | 55.00 (2) / 58.00 (3) | 56.00 (3) / 60.00 (1) |" in text
    assert "| 2 | 51.00 (2) / 53.00 (3) | 54.00 (1) / 59.00 (2) |" in text
    # held-out gains 1 and 3: mean 2, se 1; paper's 2 and 6: mean 4, se 2; optimism 1 and 3
    held = f"+2.00 [{2 - T_975_1:.2f}, {2 + T_975_1:.2f}]"
    paper = f"+4.00 [{4 - 2 * T_975_1:.2f}, {4 + 2 * T_975_1:.2f}]"
    assert (f"| ga | 55.00 +- 1.41 | {held} | 2 / 0 | 59.50 +- 0.71 | {paper} | {held} |"
            in text)
    assert "| plain | 53.00 +- 2.83 | | | 55.50 +- 3.54 | | |" in text
    assert "| the paper, Table 5 (RoBERTa-base) | | | | plain 91.44 +- 0.17, AD-DROP " \
           "92.61 +- 0.13 | +1.17 | |" in text
    # the overview: plain's held-out level, GA's gain under both protocols, the paper's gain
    assert (f"| SST-2 16-shot | 4 / 4 | 53.00 +- 2.83 | {held} | {paper} | +1.17 (RoBERTa-base, "
            "Table 5) |") in text
    assert "| RTE | not yet run |" in text
    assert "code abcdef0; training CPU 4 min in all (1.0 min a run)" in text
    assert "not in the project's copy: lost in the copy." in text
    assert "--work-dir runs/compare/glue/sst2 --jobs 2 --threads 1`" in text


def test_a_running_study_says_how_many_runs_have_landed(results):
    path = results / "glue" / "sst2" / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS[:3]))
    text = protocol_report.report(protocol_report.collect(results / "effects.yaml"), "cmd")
    assert "#### SST-2 16-shot (3 / 4 runs)" in text and "running: 3 of 4 runs so far" in text
    assert "| 2 | 51.00 (2) / 53.00 (3) | not run yet |" in text
    assert "+1.00 (1 seed)" in text


@pytest.mark.parametrize("paper, message", [
    ("[{source: Table 5, model: R, plain: [91.4], addrop: [92.6, 0.1]}]",
     r"paper\[0\].plain: expected \[mean, std\], got \[91.4\]"),
    ("[{model: R, plain: [1, 2], addrop: [3, 4]}]", r"paper\[0\]: no 'source'"),
    ("[table 5]", r"paper\[0\]: expected a mapping, got 'table 5'"),
])
def test_a_bad_paper_entry_is_one_error_naming_it(results, paper, message):
    (results / "effects.yaml").write_text(
        "studies:\n  - {dir: glue/sst2, label: S, setting: s, arms: {GA: [ga]}, paper: "
        + paper + "}\n")
    with pytest.raises(AddropError, match=r"studies\[0\] \(glue/sst2\): " + message):
        protocol_report.collect(results / "effects.yaml")


def test_the_command_writes_between_the_markers_and_keeps_the_rest(results, monkeypatch):
    monkeypatch.chdir(results)
    (results / "docs").mkdir()
    document = results / "docs" / "results.md"
    document.write_text("# Results\n\nbefore\n\n<!-- protocol-report:start -->\nold tables\n"
                        "<!-- protocol-report:end -->\n\nafter\n")
    assert command.main(["effects.yaml", "--into", "docs/results.md"]) == 0
    text = document.read_text()
    assert text.startswith("# Results\n\nbefore\n\n<!-- protocol-report:start -->\n<!-- written "
                           "by `addrop-protocol-report effects.yaml --into docs/results.md`")
    assert text.endswith("<!-- protocol-report:end -->\n\nafter\n") and "old tables" not in text
    # links are relative to the document
    assert "[`examples/sst2.yaml`](../examples/sst2.yaml)" in text
    assert not list((results / "docs").glob("*.tmp*"))


def test_a_document_without_markers_is_refused_and_left_as_it_was(results, monkeypatch):
    monkeypatch.chdir(results)
    (results / "doc.md").write_text("no markers\n")
    with pytest.raises(AddropError, match="doc.md: no <!-- protocol-report:start -->"):
        command.main(["effects.yaml", "--into", "doc.md"])
    assert (results / "doc.md").read_text() == "no markers\n"


def test_the_committed_glue_tables_are_what_the_committed_results_give(monkeypatch):
    """docs/results.md's GLUE tables cannot go stale: a landed run changes them, and this fails
    until `addrop-protocol-report` is rerun."""
    monkeypatch.chdir(REPO)  # the command's paths, as it runs from the repository root
    into = Path("docs/results.md")
    studies = protocol_report.collect(Path("docs/results/effects.yaml"))
    expected = protocol_report.report(
        studies, "addrop-protocol-report docs/results/effects.yaml --into docs/results.md",
        protocol_report.linker(into),
    )
    document = into.read_text(encoding="utf-8")
    assert protocol_report.insert(document, expected, "docs/results.md") == document


def test_a_grid_reports_the_cell_each_protocol_chooses_and_the_optimism(results):
    grid_spec = dict(SPEC, arms={"plain": "--addrop-schedule off"},
                     grid={"options": "--addrop-schedule cross", "p": [0.1, 0.5], "q": [0.1]})
    study = results / "glue" / "grid"
    study.mkdir()
    (study / "spec.json").write_text(json.dumps(grid_spec))
    records = RECORDS[:2] + [
        # selection means 79.5 and 76.5: held-out takes p0.1-q0.1 (reports 50, 48 against plain's
        # 55, 51); reported means 50.5 and 60.5: paper's takes p0.5-q0.1 (60, 61 against 58, 53)
        run("p0.1-q0.1", 1, [80, 70], [50, 52]), run("p0.1-q0.1", 2, [78, 79], [49, 48]),
        run("p0.5-q0.1", 1, [75, 76], [60, 57]), run("p0.5-q0.1", 2, [77, 70], [58, 61]),
    ]
    (study / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (study / "heatmap_test.png").write_bytes(b"png")
    (results / "effects.yaml").write_text(
        "studies:\n  - {dir: glue/grid, label: Grid, setting: g, arms: {GA: [held-out choice]}}\n")
    text = protocol_report.report(protocol_report.collect(results / "effects.yaml"), "cmd")
    held = f"-4.00 [{-4 - 1 * T_975_1:.2f}, {-4 + 1 * T_975_1:.2f}]"  # -5, -3
    paper = f"+5.00 [{5 - 3 * T_975_1:.2f}, {5 + 3 * T_975_1:.2f}]"  # 2, 8
    assert f"| Grid (GA: the cell chosen, p0.1-q0.1 / p0.5-q0.1) | 6 / 6 | 53.00 +- 2.83 | {held} " \
           f"| {paper} |" in text
    assert f"| held-out | p0.1-q0.1 | selection split 79.50 | {held} |" in text
    assert f"| paper's | p0.5-q0.1 | official dev split 60.50 | {paper} |" in text
    assert "paired over seeds): +9.00 [" in text  # (2 + 5) and (8 + 3)
    assert "[heatmap_test.png](" in text and "heatmap_dev.png" not in text


def test_the_baseline_is_set_against_the_hugging_face_reference_with_welch(results):
    reference = [dict(run("hf-plain", 1, [70, 60], [54, 60])),  # held-out 54, paper's 60
                 dict(run("hf-plain", 2, [50, 65], [56, 50])),  # held-out 50, paper's 56
                 dict(run("hf-plain", 3, [65, 64], [52, 51]))]  # held-out 52, paper's 52
    (results / "glue" / "hf.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reference))
    (results / "effects.yaml").write_text(
        "studies:\n  - {dir: glue/sst2, label: S, setting: s, arms: {GA: [ga]}, "
        "reference: glue/hf.jsonl}\n")
    text = protocol_report.report(protocol_report.collect(results / "effects.yaml"), "cmd")
    # held-out: fairseq 55, 51 against 54, 50, 52; paper's: 58, 53 against 60, 56, 52
    from scipy import stats as scipy_stats
    for protocol, ours, theirs in (("held-out", [55, 51], [54, 50, 52]),
                                   ("paper's", [58, 53], [60, 56, 52])):
        test = scipy_stats.ttest_ind(ours, theirs, equal_var=False)
        low, high = test.confidence_interval(0.95)
        difference = sum(ours) / 2 - sum(theirs) / 3
        assert f"| {protocol} | " in text
        assert f"| {difference:+.2f} [{low:.2f}, {high:.2f}] |" in text
    assert "| held-out | 53.00 +- 2.83 (2) | 52.00 +- 2.00 (3) |" in text
    assert "[`hf.jsonl`](" in text
