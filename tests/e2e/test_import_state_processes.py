"""The tests of cli/test_import_state.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_import_state import (  # noqa: F401
    PROBE,
    pytest,
    subprocess,
    sys,
)


@pytest.mark.slow  # a fresh interpreter
def test_import_registers_and_leaves_hooks_and_warning_filters_alone():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert lines == [
        "registered True",
        "excepthook unchanged True",
        "argparse error unchanged True",
        "filters unchanged True",
        "filters set by the plugin []",
    ], out.stdout + out.stderr[-2000:]
