import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLUGIN = str(REPO / "addrop_fairseq")


def run_cli(module: str, *args: str, cwd=None, env=None, check=True) -> subprocess.CompletedProcess:
    """Runs ``python -m MODULE ARGS`` (e.g. fairseq_cli.train) and returns its output."""
    environment = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    environment.update(env or {})
    result = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd,
                            env=environment, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{module} failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
                             f"{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="session")
def plugin_dir() -> str:
    return PLUGIN
