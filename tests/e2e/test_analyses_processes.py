"""The tests of analysis/test_analyses.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_analyses import (  # noqa: F401
    checkpoints,
    json,
    load_script,
    pytest,
)


@pytest.mark.slow
def test_probe_bleu_at_zero_is_fairseq_generate_and_score_bleu(checkpoints, tmp_path, plugin_dir):
    import re
    import subprocess
    import sys

    from conftest import run_cli

    checkpoint, data = checkpoints["translation"]
    out = tmp_path / "bleu.png"
    code = load_script("probe_attribution").main([
        "--path", str(checkpoint), "--data", str(data), "--k", "0,50", "--modules", "encoder_self",
        "--metric", "bleu", "--post-process", "none", "--out", str(out), "--cpu"])
    assert code == 0
    result = json.loads(out.with_suffix(".json").read_text())
    generated = run_cli("fairseq_cli.generate", data, "--user-dir", plugin_dir, "--path", checkpoint,
                        "--gen-subset", "valid", "--beam", "4", "--batch-size", "64",
                        "--required-batch-size-multiple", "1", "--cpu", "--post-process", "none")
    (tmp_path / "gen.txt").write_text(generated.stdout)
    scored = subprocess.run([sys.executable, "-m", "addrop_fairseq.cli.score_bleu",
                             "--generate-output", str(tmp_path / "gen.txt")],
                            capture_output=True, text=True, check=True)
    expected = float(re.search(r"BLEU = ([\d.]+)", scored.stdout).group(1))
    assert result["metric"] == "bleu" and result["plain"]["bleu"] == pytest.approx(expected, abs=0.005)
    for points in result["curves"].values():
        assert points[0]["metric"] == result["plain"]["bleu"]
        # the masked point counts the masks of both the teacher-forced and the generation pass
        assert points[1]["rows_exact"] == points[1]["rows"] > 0
