"""The tests of benchmark/test_benchmark.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_benchmark import (  # noqa: F401
    REPO,
    TINY,
    VARIANTS,
    checkout_commit,
    git,
    json,
    math,
    os,
    pytest,
    run_benchmark,
    subprocess,
    sys,
)


@pytest.mark.slow
def test_one_tiny_repetition_writes_json_and_markdown_for_every_variant(tmp_path):
    result = run_benchmark(*TINY, "--output", str(tmp_path / "bench"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    rows = {row["variant"]: row for row in report["rows"]}
    assert list(rows) == VARIANTS
    for name, row in rows.items():
        assert row["repetitions"] == 1
        assert math.isfinite(row["median_ms"]) and row["median_ms"] > 0, name
        assert row["step_peak_bytes"] > 0 and row["peak_bytes"] > row["step_peak_bytes"], name
        assert math.isfinite(row["time_ratio"]) and math.isfinite(row["memory_ratio"]), name
        assert len(report["times_ms"]["wall"][name]) == len(report["times_ms"]["cpu"][name]) == 1
    assert rows["plain"]["time_ratio"] == 1.0 and rows["plain"]["memory_ratio"] == 1.0
    # the cross-tuned pair is reported for AD-DROP epochs only, not for the plain steps
    assert "cross_tuned_pair_ratio" not in rows["plain"]
    assert "cross_tuned_pair_ratio" not in rows["addrop-off"]
    assert all("cross_tuned_pair_ratio" in rows[name] for name in VARIANTS[2:])
    assert report["config"]["iga_steps"] == 2 and report["config"]["device"] == "cpu"
    markdown = (tmp_path / "bench.md").read_text()
    for name in VARIANTS:
        assert f"| {name} |" in markdown
    assert "| official-ga-all |" in result.stdout
    # the command as the report records it: the output relative to the report, no machine path
    assert f"Command: `addrop-benchmark {' '.join(TINY)} --output bench`" in markdown
    assert str(tmp_path) not in markdown and str(REPO) not in markdown
    assert report["machine"]["commit"] == checkout_commit()


@pytest.mark.slow
def test_unknown_variant_is_a_one_line_error_naming_it():
    result = run_benchmark(*TINY, "--variants", "ga-all,gaa-all")
    assert result.returncode == 2
    assert "'gaa-all'" in result.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_sequence_length_sweep_holds_tokens_and_reports_time_and_memory(tmp_path):
    result = run_benchmark(*TINY, "--sweep", "4,8", "--sweep-tokens", "16",
                           "--variants", "ga-all,rd", "--output", str(tmp_path / "sweep"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "sweep.json").read_text())
    assert [(r["config"]["seq_len"], r["config"]["batch_size"]) for r in report] == [(4, 4), (8, 2)]
    for r in report:
        rows = {row["variant"]: row for row in r["rows"]}
        assert list(rows) == ["plain", "ga-all", "rd"]
        assert all(math.isfinite(row["step_memory_ratio"]) for row in rows.values())
    markdown = (tmp_path / "sweep.md").read_text()
    assert "| 4 x 4 |" in markdown and "| 8 x 2 |" in markdown
    assert "ga-all step peak" in markdown


@pytest.mark.slow
def test_profile_attention_script_prints_every_part():
    result = subprocess.run([sys.executable, "-m", "addrop_fairseq.cli.profile_attention",
                             "--shapes", "2x8", "--reps", "1"], cwd=REPO, capture_output=True,
                            text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| 2x8 |" in result.stdout and "record GA" in result.stdout


@pytest.mark.slow  # runs git
def test_commit_is_the_checkouts_own_and_none_for_a_package_installed_elsewhere(tmp_path):
    clone = tmp_path / "clone"
    package = clone / "addrop_fairseq"
    # a wheel installed into a virtual environment inside the clone
    installed = clone / ".venv" / "lib" / "site-packages" / "addrop_fairseq"
    for folder in (package, installed):
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
    git("init", "-q", cwd=clone)
    git("add", "addrop_fairseq", cwd=clone)
    git("commit", "-q", "-m", "package", cwd=clone)
    assert checkout_commit(str(package)) == git("rev-parse", "--short", "HEAD", cwd=clone)
    assert checkout_commit(str(installed)) is None
    outside = tmp_path / "site-packages" / "addrop_fairseq"
    outside.mkdir(parents=True)
    assert checkout_commit(str(outside)) is None
