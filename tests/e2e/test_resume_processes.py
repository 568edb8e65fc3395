"""The tests of tasks/test_resume.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_resume import (  # noqa: F401
    TOLERANCE,
    data,
    epoch_summaries,
    load_checkpoint,
    max_parameter_difference,
    pytest,
    re,
    run_cli,
    train_args,
)


@pytest.mark.slow
def test_resume_at_epoch_boundary_matches_uninterrupted_run(data, tmp_path):
    seed = ("--seed", "7")
    whole = run_cli("fairseq_cli.train", *train_args(data, tmp_path / "whole", "--max-epoch", "4", *seed))
    first = run_cli("fairseq_cli.train", *train_args(data, tmp_path / "split", "--max-epoch", "2", *seed))
    halfway = load_checkpoint(tmp_path / "split" / "checkpoint_last.pt")
    resumed = run_cli("fairseq_cli.train", *train_args(data, tmp_path / "split", "--max-epoch", "4", *seed))
    assert "Loaded checkpoint" in resumed.stdout + resumed.stderr
    assert re.search(r"epoch 003: AD-DROP off", resumed.stdout + resumed.stderr)

    whole_halfway = load_checkpoint(tmp_path / "whole" / "checkpoint2.pt")
    end = {name: load_checkpoint(tmp_path / name / "checkpoint_last.pt") for name in ("whole", "split")}
    updates = end["whole"]["optimizer_history"][-1]["num_updates"]
    assert halfway["optimizer_history"][-1]["num_updates"] == updates // 2
    assert end["split"]["optimizer_history"][-1]["num_updates"] == updates
    assert (end["split"]["extra_state"]["train_iterator"]["epoch"]
            == end["whole"]["extra_state"]["train_iterator"]["epoch"])

    # epochs 1-2 (plain, then AD-DROP) ran in two separate processes with the same seed
    same_seed = max_parameter_difference(whole_halfway["model"], halfway["model"])
    after_resume = max_parameter_difference(end["whole"]["model"], end["split"]["model"])
    # the comparison is not vacuous: the second half of training moved the parameters
    moved = max_parameter_difference(end["whole"]["model"], halfway["model"])
    print(f"\nsame seed, {updates // 2} updates: max |diff| {same_seed:.3g}; resumed at epoch 2, "
          f"{updates} updates: max |diff| {after_resume:.3g} (tolerance {TOLERANCE}); "
          f"epochs 3-4 moved parameters by up to {moved:.3g}")
    assert same_seed <= TOLERANCE
    assert after_resume <= TOLERANCE
    assert moved > 1e-3

    # the same cross-tuning phase, and the same AD-DROP draws (identical drop rates and losses)
    uninterrupted = epoch_summaries(whole.stdout + whole.stderr)
    resumed_epochs = epoch_summaries(first.stdout + first.stderr)
    resumed_epochs.update(epoch_summaries(resumed.stdout + resumed.stderr))
    assert [uninterrupted[e][0] for e in (1, 2, 3, 4)] == ["off", "on", "off", "on"]
    assert resumed_epochs == uninterrupted
    assert 0.0 < float(uninterrupted[4][1]["addrop_drop"]) < 1.0
