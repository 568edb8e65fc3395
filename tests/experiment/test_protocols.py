"""The two selection protocols (experiment/protocols.py) against a hand computation, and the
runner's hooks that feed them (report_split: spec, command, fingerprint, log parsing)."""
import json

import pytest

from addrop_fairseq.errors import AddropError
from addrop_fairseq.experiment import logs, protocols, runner
from addrop_fairseq.experiment.spec import build_spec

T_975_1 = 12.706204736174698  # Student's t, 97.5% quantile, 1 degree of freedom


def run(arm, seed, valid, report, status="ok"):
    epochs = [{"epoch": e, "valid_metric": v, "report_metric": r}
              for e, (v, r) in enumerate(zip(valid, report), 1)]
    return {"arm": arm, "seed": seed, "status": status, "epochs": epochs}


SPEC = build_spec({
    "data": "d", "train": "--lr 1", "baseline": "plain", "seeds": [1, 2, 3],
    "arms": {"plain": "--addrop-schedule off", "ga": "--addrop-schedule cross"},
    "grid": {"options": "--addrop-schedule cross", "p": [0.1, 0.5], "q": [0.1]},
    "select": {"metric": "accuracy", "maximize": True}, "report_split": "test",
})

RECORDS = [
    # plain: held-out epochs 2 (seed 1) and 2 (seed 2: a tie at 62 goes to the later epoch);
    # paper's epochs 3 and 3
    run("plain", 1, [60, 70, 65], [50, 55, 58]),
    run("plain", 2, [62, 62, 61], [52, 51, 53]),
    run("plain", 3, [50], [40]),  # no other arm has seed 3: never paired, never chooses a cell
    # ga: held-out 56 (epoch 3) and 54 (epoch 1); paper's 60 (epoch 1) and 59 (epoch 2)
    run("ga", 1, [61, 66, 72], [60, 57, 56]),
    run("ga", 2, [70, 64, 63], [54, 59, 50]),
    run("ga", 3, [99], [99], status="failed"),
    # cell p0.1-q0.1: selection 80, 79 (mean 79.5) -> reported 50, 48; paper's 52, 49 (mean 50.5)
    run("p0.1-q0.1", 1, [80, 70], [50, 52]),
    run("p0.1-q0.1", 2, [78, 79], [49, 48]),
    # cell p0.5-q0.1: selection 76, 77 (mean 76.5) -> reported 57, 58; paper's 60, 61 (mean 60.5)
    run("p0.5-q0.1", 1, [75, 76], [60, 57]),
    run("p0.5-q0.1", 2, [77, 70], [58, 61]),
]


def test_each_run_is_scored_at_the_epoch_its_protocol_chooses():
    held = protocols.run_score(RECORDS[1], protocols.HELD_OUT, maximize=True)
    paper = protocols.run_score(RECORDS[1], protocols.PAPER, maximize=True)
    assert (held.epoch, held.selection, held.reported) == (2, 62, 51)
    assert (paper.epoch, paper.reported) == (3, 53)
    # minimising (e.g. a loss): the lowest, the later epoch on a tie
    assert protocols.run_score(RECORDS[1], protocols.HELD_OUT, maximize=False).epoch == 3


def test_arm_gains_and_optimism_match_the_hand_computation():
    result = protocols.compare(SPEC, RECORDS)["arms"]["ga"]
    held, paper = result[protocols.HELD_OUT], result[protocols.PAPER]
    # held-out: ga 56, 54 against plain 55, 51 -> differences 1, 3
    assert held.seeds == [1, 2] and held.reported == {1: 56, 2: 54}
    assert held.gain.mean == pytest.approx(2.0)
    assert held.gain.low == pytest.approx(2.0 - T_975_1 * 1.0)  # sd sqrt(2), n 2: se 1
    assert held.gain.high == pytest.approx(2.0 + T_975_1 * 1.0)
    # paper's: ga 60, 59 against plain 58, 53 -> differences 2, 6
    assert paper.reported == {1: 60, 2: 59} and paper.baseline[2] == 53
    assert paper.gain.mean == pytest.approx(4.0)
    assert paper.gain.high == pytest.approx(4.0 + T_975_1 * 2.0)  # sd 2 sqrt(2): se 2
    # optimism per seed: 2 - 1 and 6 - 3
    assert result["optimism"].mean == pytest.approx(2.0)
    assert result["optimism"].low == pytest.approx(2.0 - T_975_1 * 1.0)


def test_grid_cells_are_chosen_on_the_selection_split_or_on_the_reported_split():
    grid = protocols.compare(SPEC, RECORDS)["grid"]
    cell, criterion, chosen = grid[protocols.HELD_OUT]
    assert cell == "p0.1-q0.1" and criterion == {"p0.1-q0.1": 79.5, "p0.5-q0.1": 76.5}
    assert chosen.gain.mean == pytest.approx(-4.0)  # 50 - 55, 48 - 51
    cell, criterion, chosen = grid[protocols.PAPER]
    assert cell == "p0.5-q0.1" and criterion == {"p0.1-q0.1": 50.5, "p0.5-q0.1": 60.5}
    assert chosen.gain.mean == pytest.approx(5.0)  # 60 - 58, 61 - 53
    assert grid["optimism"].mean == pytest.approx(9.0)  # (2 + 5) and (8 + 3)
    text = protocols.summarise(SPEC, RECORDS)
    assert "| held-out | p0.1-q0.1 | selection score 79.50 | -4.00 [" in text
    assert "| paper's | p0.5-q0.1 | `test` score 60.50 | +5.00 [" in text


def test_a_tie_between_cells_goes_to_the_earlier_cell():
    records = [r for r in RECORDS if r["arm"] in ("plain", "p0.1-q0.1")]
    records += [dict(r, arm="p0.5-q0.1") for r in RECORDS if r["arm"] == "p0.1-q0.1"]
    cell, _ = protocols.choose_cell(records, ["p0.1-q0.1", "p0.5-q0.1"], "plain",
                                       protocols.HELD_OUT, maximize=True)
    assert cell == "p0.1-q0.1"


# ---------------------------------------------------------------------------------------------
# the runner's hooks


def test_report_split_is_validated_every_epoch_and_parsed(tmp_path):
    comparison = runner.Comparison(SPEC, tmp_path / "out")
    command = comparison.train_command(SPEC.arm("ga"), 1, tmp_path / "ck")
    assert command[command.index("--valid-subset") + 1] == "valid,test"
    log = "\n".join([
        '2026-01-01 | INFO | valid | {"epoch": 1, "valid_loss": "0.7", "valid_accuracy": "61"}',
        '2026-01-01 | INFO | test | {"epoch": 1, "test_loss": "0.9", "test_accuracy": "57.5"}',
        '2026-01-01 | INFO | train | {"epoch": 1, "train_loss": "0.8"}',
    ])
    epochs = logs.parse_epochs(log, "accuracy", "test")
    assert epochs[0]["valid_metric"] == 61 and epochs[0]["report_metric"] == 57.5
    assert epochs[0]["report_loss"] == 0.9
    assert "report_metric" not in logs.parse_epochs(log, "accuracy")[0]


def test_fingerprints_of_specs_without_report_split_are_unchanged():
    raw = {"data": "d", "train": "--lr 1", "arms": {"plain": "--x"}, "seeds": [1]}
    spec = build_spec(raw)
    old = json.dumps([spec.data, spec.train, spec.arms[0].options, 1, spec.select_metric,
                      spec.maximize, spec.test, spec.valid_on_train])
    import hashlib

    assert runner.fingerprint(spec, spec.arms[0], 1) == hashlib.sha1(old.encode()).hexdigest()[:16]
    with_report = build_spec(dict(raw, report_split="test"))
    assert runner.fingerprint(with_report, with_report.arms[0], 1) != runner.fingerprint(
        spec, spec.arms[0], 1)
    assert with_report.to_dict()["report_split"] == "test" and "report_split" not in spec.to_dict()


@pytest.mark.parametrize("extra, message", [
    ({"report_split": "valid"}, "other than train, valid"),
    ({"report_split": "test", "test": {"kind": "glue", "metric": "accuracy"}},
     "test.kind must be none"),
])
def test_bad_report_split_is_refused(extra, message):
    with pytest.raises(AddropError, match=message):
        build_spec(dict({"data": "d", "arms": {"plain": "--x"}}, **extra))
