"""The tests of experiment/test_experiment.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_experiment import (  # noqa: F401
    _fake_comparison,
    json,
    os,
    pytest,
    stats,
    subprocess,
    sys,
)


@pytest.mark.slow  # the runner starts its stand-in and git
def test_a_resumed_run_counts_the_time_of_its_killed_attempt(tmp_path, monkeypatch):
    comparison, run_dir = _fake_comparison(tmp_path, monkeypatch)
    (run_dir / "checkpoints" / "checkpoint_last.pt").write_bytes(b"")  # a killed attempt's
    (run_dir / "attempts.json").write_text(json.dumps([{"wall_s": 200.0, "cpu_s": 100.0}]))
    record = comparison.run_one(comparison.spec.arms[0], 1)
    assert record["status"] == "ok" and record["best"]["valid_metric"] == 50.0
    assert record["resumed"] and record["attempts"] == 2 and record["times_complete"]
    assert 100.5 <= record["train_cpu_s"] < 110 and 201.0 <= record["wall_s"] < 230
    ledger = json.loads((run_dir / "attempts.json").read_text())
    assert ledger[0] == {"wall_s": 200.0, "cpu_s": 100.0} and ledger[1]["cpu_s"] >= 0.5
    assert record["train_cpu_s"] == round(100.0 + ledger[1]["cpu_s"], 1)
    # sampled while the attempt ran, so a SIGKILL then would have left this much on record
    saved = (run_dir / "train.log").read_text().split("saved while training: ")[1].splitlines()[0]
    during = json.loads(saved)
    assert len(during) == 2 and during[0]["cpu_s"] == 100.0 and during[1]["cpu_s"] >= 0.5


@pytest.mark.slow  # the runner starts its stand-in and git
def test_a_run_started_afresh_ignores_an_old_ledger_and_an_unledgered_resume_says_so(
    tmp_path, monkeypatch
):
    comparison, run_dir = _fake_comparison(tmp_path, monkeypatch)
    # no checkpoint: fairseq starts from scratch, so what earlier attempts spent bought nothing
    (run_dir / "attempts.json").write_text(json.dumps([{"wall_s": 200.0, "cpu_s": 100.0}]))
    fresh = comparison.run_one(comparison.spec.arms[0], 1)
    assert not fresh["resumed"] and fresh["attempts"] == 1 and fresh["times_complete"]
    assert 0.5 <= fresh["train_cpu_s"] < 50
    # resumed from a directory the runner kept no ledger in: only the last attempt is known
    (run_dir / "attempts.json").unlink()
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "checkpoint_last.pt").write_bytes(b"")
    unledgered = comparison.run_one(comparison.spec.arms[0], 1)
    assert unledgered["resumed"] and not unledgered["times_complete"]
    assert not stats.times_complete(unledgered)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads Linux's /proc")
@pytest.mark.slow  # starts a process to measure
def test_process_cpu_reads_a_running_process():
    from addrop_fairseq.experiment.runner import _process_cpu

    child = subprocess.Popen(
        [sys.executable, "-c",
         "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\n"
         "print('spent', flush=True)\ntime.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout.readline().strip() == "spent"
        assert 0.5 <= _process_cpu(child.pid) < 5
    finally:
        child.kill()
        child.wait()
    assert _process_cpu(child.pid) is None  # reaped: gone
