"""The README's first command: scripts/quickstart.sh end to end (2 epochs instead of 12)."""
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def test_quickstart_trains_both_phases_and_prints_bleu(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    result = subprocess.run(["bash", "scripts/quickstart.sh", str(tmp_path / "qs"), "2"], cwd=REPO,
                            env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    phases = re.findall(r"\| train \| epoch (\d+) \|.*?\| addrop (\d)", output)
    assert phases == [("001", "0"), ("002", "1")]
    bleu = re.search(r"^BLEU = ([\d.]+) .*\((\d+) sentences\)", output, re.M)
    assert bleu and int(bleu.group(2)) == 300, "every test sentence is translated and scored"
    assert "signature: nrefs:1|case:mixed|eff:no|tok:13a" in output

    # run again, as a user would: the data is reused, training is found finished, same BLEU
    again = subprocess.run(["bash", "scripts/quickstart.sh", str(tmp_path / "qs"), "2"], cwd=REPO,
                           env=env, capture_output=True, text=True)
    second = again.stdout + again.stderr
    assert again.returncode == 0, second[-4000:]
    assert "pairs" not in again.stdout, "the data was prepared again"
    assert re.search(r"Loaded checkpoint \S*checkpoint_last\.pt", second)
    assert "done training" in second and "| train | epoch" not in second
    assert re.search(r"^BLEU = ([\d.]+) ", second, re.M).group(1) == bleu.group(1)
