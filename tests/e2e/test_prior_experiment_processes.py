"""The tests of analysis/test_prior_experiment.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_prior_experiment import (  # noqa: F401
    REPO,
    SPEC,
    json,
    np,
    os,
    prepared_corpus,
    prior,
    pytest,
    subprocess,
    sys,
)


@pytest.mark.slow
def test_prior_experiment_end_to_end_and_resume(tmp_path, plugin_dir):
    data = prepared_corpus(tmp_path)
    spec = tmp_path / "base.yaml"
    spec.write_text(SPEC.format(data=data, plugin=plugin_dir))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "addrop_fairseq.cli.prior_experiment", str(spec), "--out",
               str(out), "--rate", "0.3", "--jobs", "2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"prior_experiment: {out / 'prior.png'}" in done.stdout

    records = {json.loads(line)["arm"]: json.loads(line)
               for line in (out / "results.jsonl").read_text().splitlines()}
    assert sorted(records) == sorted(prior.ARMS)
    for arm, record in records.items():
        assert record["status"] == "ok", record.get("error")
        epochs = record["epochs"]
        assert [e["epoch"] for e in epochs] == [1, 2]
        assert all(e["trainset_loss"] is not None and e["valid_loss"] is not None for e in epochs)
        drops = [e["addrop_drop"] for e in epochs]
        if arm == "none":
            assert [e["addrop"] for e in epochs] == [0, 0] and drops == [0, 0]
        else:  # on in every epoch, at the rate: ceil(0.3 n) of n keys, or 0.3 n in expectation
            assert [e["addrop"] for e in epochs] == [1, 1]
            low, high = (0.27, 0.33) if arm == "random" else (0.3, 0.45)
            assert all(low < d < high for d in drops), (arm, drops)
    assert "--addrop-strategy high" in records["high"]["command"]

    # the table and the picture's data are the runs' per-epoch numbers
    report = json.loads((out / "prior.json").read_text())
    for arm, record in records.items():
        means = report["means"][arm]
        assert means["epochs"] == [1, 2]
        for field in ("trainset_loss", "valid_loss", "train_loss"):
            np.testing.assert_allclose(means[field], [e[field] for e in record["epochs"]], atol=1e-4)
    table = (out / "prior.md").read_text()
    assert "| epoch | none train | none dev | random train" in table
    high_dev = records["high"]["epochs"][1]["valid_loss"]
    assert f"| 2 |" in table and f"{high_dev:.3f}" in table
    import matplotlib.image
    image = matplotlib.image.imread(out / "prior.png")
    assert (out / "prior.png").stat().st_size > 1000 and np.ptp(image) > 0
    assert (out / "summary.md").exists() and (out / "curves.png").exists()

    # rerun: everything is recorded, nothing trains again
    again = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    assert again.returncode == 0 and "4 recorded, 0 to run" in again.stdout, again.stdout[-2000:]
