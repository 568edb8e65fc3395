"""The tests of experiment/test_pipeline.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_pipeline import (  # noqa: F401
    StageFailed,
    pytest,
    run_stage,
    sys,
)


@pytest.mark.slow
def test_a_stage_logs_everything_and_its_failure_carries_the_last_lines(tmp_path):
    log = tmp_path / "stage.log"
    lines = []
    run_stage("ok", [sys.executable, "-c", "print('out'); import sys; print('err', file=sys.stderr)"],
              log, on_line=lines.append)
    assert sorted(log.read_text().split()) == ["err", "out"] and len(lines) == 2

    script = "import sys\nfor i in range(30): print(i)\nsys.exit('boom')"
    with pytest.raises(StageFailed) as failure:
        run_stage("bad", [sys.executable, "-c", script], log, tail=5)
    assert failure.value.returncode == 1 and failure.value.log == log
    assert [line.strip() for line in failure.value.last_lines] == ["26", "27", "28", "29", "boom"]
    assert f"the last lines of {log}" in str(failure.value)


@pytest.mark.slow
def test_stdout_to_its_own_file(tmp_path):
    out, log = tmp_path / "out.txt", tmp_path / "err.log"
    run_stage("split", [sys.executable, "-c", "import sys; print('data'); print('note', file=sys.stderr)"],
              log, stdout=out)
    assert out.read_text() == "data\n" and log.read_text() == "note\n"
