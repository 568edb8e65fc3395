"""What a user gets from ``pip install`` of the built wheel, without the clone.

The wheel is built from this checkout and installed (not editable) into a fresh virtual
environment whose only other packages are this environment's dependencies (reached through a
``.pth`` line, so that nothing is downloaded or compiled). Every command then runs from an empty
directory, where neither the checkout nor its examples/ can be found.
"""
import os
import re
import subprocess
import sys
import sysconfig
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def declared_commands():
    namespace = {}
    source = (REPO / "setup.py").read_text(encoding="utf-8")
    exec(compile(source[:source.index("setup(")], "setup.py", "exec"), namespace)  # COMMANDS only
    return [f"addrop-{name}" for name in namespace["COMMANDS"]]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--quiet", "-w", str(root / "dist"), str(REPO)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel, = (root / "dist").glob("addrop_fairseq-*.whl")
    env_dir = root / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # this environment's packages (fairseq, torch, ...) after the new one's own; a path added by a
    # .pth line is no site directory, so this checkout's editable install is not seen there
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                           str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    empty = root / "elsewhere"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}", OMP_NUM_THREADS="1",
               PYTHONUNBUFFERED="1")
    return env_dir / "bin", empty, env


def test_the_wheel_imports_the_installed_package_not_the_checkout(installed):
    bin_dir, empty, env = installed
    where = subprocess.run([bin_dir / "python", "-c", "import addrop_fairseq; print(addrop_fairseq.__file__)"],
                           cwd=empty, env=env, capture_output=True, text=True, check=True).stdout
    assert str(bin_dir.parent) in where and str(REPO) not in where, where


def test_every_command_answers_help_from_an_empty_directory(installed):
    bin_dir, empty, env = installed
    commands = declared_commands()
    assert "addrop-train" in commands and "addrop-hydra-train" in commands and len(commands) >= 20

    def help_of(command):
        return command, subprocess.run([bin_dir / command, "--help"], cwd=empty, env=env,
                                       capture_output=True, text=True)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for command, result in pool.map(help_of, commands):
            assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"
            # argparse's usage, or hydra's help for addrop-hydra-train
            assert re.search(r"usage|powered by hydra", result.stdout, re.I), command


def test_the_quick_start_runs_end_to_end_from_the_wheel(installed):
    """One epoch: prepare (the packaged sample), addrop-hydra-train with the packaged recipe
    (found without --config-dir), translate and score."""
    bin_dir, empty, env = installed
    result = subprocess.run([bin_dir / "addrop-quickstart", "qs", "1"], cwd=empty, env=env,
                            capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "4,056 / 300 / 300 sentence pairs" in output
    assert re.search(r"^  epoch  1/1  plain ", output, re.M), output
    assert re.search(r"^BLEU = [\d.]+ .*\(300 sentences\)$", output, re.M), output
    assert (empty / "qs" / "checkpoints" / "checkpoint_best.pt").is_file()
    assert (empty / "qs" / "checkpoints" / "hydra" / "config.yaml").is_file()


def test_hydra_train_finds_a_packaged_recipe_by_name(installed):
    bin_dir, empty, env = installed
    result = subprocess.run([bin_dir / "addrop-hydra-train", "--config-name", "cola",
                             "task.data=somewhere", "--cfg", "job"], cwd=empty, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "_name: addrop_sentence_prediction" in result.stdout
