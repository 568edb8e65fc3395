"""The tests of cli/test_bad_input.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_bad_input import (  # noqa: F401
    ADDROP,
    CASES,
    PLUGIN,
    TINY_TRANSFORMER,
    data_variants,
    outcomes,
    pytest,
    run_cli,
)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_one_line_error_through_addrop_train(outcomes, case):
    result = outcomes[case]
    stderr = result.stderr.strip()
    assert result.returncode != 0, f"{case}: fairseq-train accepted it\n{result.stdout[-2000:]}"
    assert "Traceback" not in stderr and "usage:" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0] == stderr.splitlines()[-1], stderr[-3000:]
    assert errors[0].startswith("addrop-train: error: ")
    for fragment in CASES[case][2]:
        assert fragment in errors[0], f"{fragment!r} missing from: {errors[0]}"


@pytest.mark.slow
def test_plain_fairseq_train_ends_with_the_same_message(tmp_path):
    """Importing the plugin installs no excepthook: fairseq-train shows Python's traceback, and
    its last line is the AddropError with the message addrop-train prints alone."""
    data = data_variants(tmp_path)["full"]
    result = run_cli("fairseq_cli.train", data, "--user-dir", PLUGIN, *TINY_TRANSFORMER, *ADDROP,
                     "--addrop-p", "0", "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "200",
                     "--cpu", "--max-epoch", "1", "--save-dir", tmp_path / "checkpoints", check=False)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0 and "Traceback" in result.stderr
    assert last.startswith("addrop_fairseq.core.errors.AddropError: ") and "--addrop-p=0.0" in last, last
