"""The tests of convert/test_export_hf.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_export_hf import (  # noqa: F401
    REPO,
    marian,
    pytest,
    subprocess,
    sys,
)


@pytest.mark.slow
def test_command_line(marian, tmp_path):
    _, _, _, _, tuned, _ = marian
    command = [sys.executable, "-m", "addrop_fairseq.cli.export_hf", str(tuned),
               str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "MarianMTModel" in done.stdout and (tmp_path / "out" / "model.safetensors").is_file()
    again = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert again.stderr.strip().splitlines()[-1].startswith(
        "addrop-export-hf: error: OUT_DIR ") and "--force" in again.stderr
