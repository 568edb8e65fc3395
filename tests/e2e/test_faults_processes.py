"""The tests of package/test_faults.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_faults import (  # noqa: F401
    FAULTY_TRAIN,
    data,
    pytest,
    re,
    run_cli,
    torch,
    train_args,
)


@pytest.mark.slow
def test_fallback_is_counted_in_the_training_log(data, tmp_path):
    (tmp_path / "faulty_train.py").write_text(FAULTY_TRAIN)
    completed = run_cli("faulty_train", *train_args(data, tmp_path / "checkpoints", "--addrop-schedule",
                                                    "always", "--max-epoch", "1"), cwd=tmp_path)
    log = completed.stdout + completed.stderr
    inner = re.findall(r"train_inner \| epoch 001: +\d+ / \d+ (.*)", log)
    updates = len(inner)
    assert updates >= 3
    for index, line in enumerate(inner):
        fallback = re.search(r"addrop_fallback=(\d+)", line)
        # update_num counts from 0: the 2nd, 4th, ... logged updates were faulty
        assert (int(fallback.group(1)) if fallback else 0) == index % 2, line
        assert re.match(r"loss=\d+\.\d+,", line), line
    summary = re.search(r"\| train \| epoch 001 \|.*", log).group(0)
    assert f"addrop_fallback {updates // 2}" in summary, summary
    state = torch.load(tmp_path / "checkpoints" / "checkpoint_last.pt", map_location="cpu")
    assert all(torch.isfinite(v).all() for v in state["model"].values())


@pytest.mark.slow
def test_corrupt_checkpoint_on_resume_and_in_generate_is_one_line(data, tmp_path):
    save = tmp_path / "checkpoints"
    run_cli("fairseq_cli.train", *train_args(data, save, "--max-update", "2",
                                              "--save-interval-updates", "1"))
    assert (save / "checkpoint_1_2.pt").is_file()
    (save / "checkpoint_last.pt").write_bytes(b"")
    resumed = run_cli("addrop_fairseq.cli.train", *train_args(data, save, "--max-update", "3"),
                      check=False)
    truncated = tmp_path / "model.pt"
    truncated.write_bytes((save / "checkpoint_1_2.pt").read_bytes()[:-100])
    generated = run_cli("addrop_fairseq.cli.generate", data, "--path", truncated,
                        "--cpu", "--gen-subset", "valid", "--batch-size", "4", check=False)
    for result, prog, path, option, listed in (
            (resumed, "addrop-train", save / "checkpoint_last.pt", "--restore-file",
             save / "checkpoint_1_2.pt"),
            (generated, "addrop-generate", truncated, "--path", None)):
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
        assert lines[-1].startswith(f"{prog}: error: checkpoint {path} is "), lines[-1]
        if listed:
            assert (f"loadable checkpoints in {save}: checkpoint_1_2.pt (2 updates), "
                    "checkpoint_best.pt (2 updates), checkpoint_1_1.pt (1 update)") in lines[-1]
            assert f"use one with {option} {listed}" in lines[-1]
        else:
            assert f"no loadable checkpoint in {tmp_path}" in lines[-1]
