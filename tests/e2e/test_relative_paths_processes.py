"""The tests of experiment/test_relative_paths.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_relative_paths import (  # noqa: F401
    Comparison,
    REPO,
    _committed_files,
    _fake_spawn,
    build_spec,
    machine_paths,
    os,
    pytest,
    read_results,
    relative_path,
    shlex,
)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["inside", "outside"])
def test_a_runner_record_names_no_absolute_path(where, tmp_path, monkeypatch):
    """Data, plugin, checkpoint and output directories given as absolute paths; the runner runs
    from a directory that holds them ("inside") or from a sibling ("outside")."""
    repo = tmp_path / "repo"
    data = repo / "data-bin" / "tiny"
    data.mkdir(parents=True)
    (data / "train.x").write_text("x")
    cwd = repo if where == "inside" else tmp_path / "elsewhere"
    cwd.mkdir(exist_ok=True)
    monkeypatch.chdir(cwd)
    spec = build_spec({
        "data": str(data),
        "train": f"--user-dir {repo / 'addrop_fairseq'} --restore-file {repo / 'model.pt'}",
        "arms": {"plain": "--addrop-schedule off", "broken": "--addrop-schedule cross"},
        "seeds": [1],
        "select": {"metric": "f1", "maximize": True},
        "valid_on_train": True,
    })
    comparison = Comparison(spec, repo / "out", echo=lambda *_: None)
    monkeypatch.setattr(Comparison, "_spawn", _fake_spawn(0))
    comparison.restrict(["plain"])
    comparison.run()
    monkeypatch.setattr(Comparison, "_spawn", _fake_spawn(1))
    comparison.restrict(["broken"])
    comparison.run()

    text = (repo / "out" / "results.jsonl").read_text()
    assert str(tmp_path) not in text and machine_paths(text) == []
    records = {r["arm"]: r for r in read_results(repo / "out" / "results.jsonl")}
    assert records["plain"]["status"] == "ok" and records["broken"]["status"] == "failed"
    for arm, record in records.items():
        words = shlex.split(record["command"])
        assert not any(os.path.isabs(w) for w in words)
        # read from the directory the runner ran in, the paths lead to the real places
        run_dir = repo / "out" / "runs" / arm / "seed1"
        assert (cwd / record["run_dir"]).resolve() == run_dir.resolve()
        save_dir = words[words.index("--save-dir") + 1]
        assert (cwd / save_dir).resolve() == (run_dir / "checkpoints").resolve()
        restore = words[words.index("--restore-file") + 1]
        assert (cwd / restore).resolve() == (repo / "model.pt").resolve()
        assert (cwd / words[3]).resolve() == (repo / "out" / "runs" / "data-with-trainset").resolve()
    error = records["broken"]["error"]
    log = relative_path(repo / "out" / "runs" / "broken" / "seed1" / "train.log")
    assert error.endswith(f"(log: {log})"), error
    if where == "inside":
        assert records["plain"]["run_dir"] == "out/runs/plain/seed1"


@pytest.mark.slow
def test_no_committed_doc_or_record_names_a_machine_path():
    files = _committed_files()
    assert any(f.name == "results.jsonl" for f in files)  # the scan sees the records
    found = []
    for path in files:
        content = path.read_bytes()
        if b"\0" in content:  # images
            continue
        for match in machine_paths(content.decode("utf-8", errors="replace")):
            found.append(f"{path.relative_to(REPO)}: {match}")
    assert found == [], "\n".join(found[:20])
