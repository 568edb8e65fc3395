"""Every tool is an installed command: setup.py declares ``addrop-NAME`` for each module
``addrop_fairseq/cli/NAME.py`` (its ``cli`` function), and nothing else."""
import importlib
import re

from conftest import REPO

# the modules of cli/ that are the commands' shared code, not commands
SHARED = {"__init__", "policy", "fairseq_tools", "warning_filters"}


def declared():
    source = (REPO / "setup.py").read_text(encoding="utf-8")
    namespace = {}
    exec(compile(source[:source.index("setup(")], "setup.py", "exec"), namespace)
    return namespace["COMMANDS"]


def test_every_cli_module_is_a_declared_command_and_the_other_way_round():
    modules = {p.stem for p in (REPO / "addrop_fairseq" / "cli").glob("*.py")} - SHARED
    assert {name.replace("-", "_") for name in declared()} == modules


def test_every_declared_command_has_a_cli_function():
    for name in declared():
        module = importlib.import_module(f"addrop_fairseq.cli.{name.replace('-', '_')}")
        assert callable(getattr(module, "cli", None)), name
    assert re.search(r'f"addrop-\{name\} = addrop_fairseq\.cli\.\{name\.replace\(\'-\', \'_\'\)\}:cli"',
                     (REPO / "setup.py").read_text(encoding="utf-8"))


def test_no_script_is_left_in_scripts():
    assert sorted(p.name for p in (REPO / "scripts").iterdir()) == ["install.sh", "quickstart.sh"]
    package = REPO / "addrop_fairseq"
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "parents[2]" not in text and "scripts/" not in text, path
