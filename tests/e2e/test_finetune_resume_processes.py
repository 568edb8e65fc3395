"""The tests of tasks/test_finetune_resume.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_finetune_resume import (  # noqa: F401
    PLUGIN,
    SAVED,
    SPEC,
    assert_resumed_to_the_same_end,
    compare,
    converted,
    json,
    load_checkpoint,
    ner_command,
    os,
    pytest,
    re,
    run,
    run_killed,
    signal,
    time,
)


@pytest.mark.slow
def test_ner_fine_tuning_killed_after_an_epoch_resumes_with_its_command(converted, tmp_path):
    started = time.perf_counter()
    whole = run(ner_command(converted, tmp_path / "whole"))
    assert "loading pretrained model" in whole and "starting a new tagging head" in whole
    command = ner_command(converted, tmp_path / "split")
    epoch, killed_at = run_killed(command, lambda epoch, updates, line: epoch == 2)
    resumed = run(command)
    end = assert_resumed_to_the_same_end(tmp_path / "whole", tmp_path / "split", resumed,
                                         killed_at, "NER from a converted encoder, epoch boundary")
    pretrained = load_checkpoint(converted.checkpoint)["model"]
    moved = max((end["split"]["model"][k].double() - v.double()).abs().max().item()
                for k, v in pretrained.items() if k in end["split"]["model"])
    assert moved > 1e-3  # trained away from the pretrained weights

    # the form the commands had before: the same start, but the restart trains from scratch
    old = [a for a in command]
    at = old.index("--finetune-from-model")
    old[at:at + 2] = ["--restore-file", str(converted.checkpoint), "--reset-optimizer",
                      "--reset-dataloader", "--reset-meters"]
    restarted = run(old)
    warning = [line for line in restarted.splitlines() if "starts over from" in line]
    assert len(warning) == 1 and "--finetune-from-model" in warning[0]
    assert re.search(r"Loaded checkpoint \S*model\.pt \(epoch 1 @ 0 updates\)", restarted)
    print(f"wall {time.perf_counter() - started:.1f} s")


@pytest.mark.slow
def test_compare_resumes_a_killed_fine_tuning_run_and_records_that_it_continued(converted, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(data=converted.data, plugin=PLUGIN, model=" ".join(converted.model),
                                checkpoint=converted.checkpoint))
    whole = compare(spec, tmp_path / "whole")
    output, _ = whole.communicate(timeout=600)
    assert whole.returncode == 0, output

    split = tmp_path / "split"
    killed = compare(spec, split)
    log = split / "runs" / "ga" / "seed2" / "train.log"
    deadline = time.time() + 300
    while time.time() < deadline and killed.poll() is None:
        saved = [m for m in SAVED.finditer(log.read_text()) if int(m.group(1)) == 2] \
            if log.exists() else []
        if saved:
            break
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)  # the runner and its fairseq-train, as a lost machine
    killed.wait()
    assert not (split / "results.jsonl").exists(), "the run finished before the kill"
    resumed = compare(spec, split)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "did NOT continue" not in output

    [first] = [json.loads(line) for line in (tmp_path / "whole" / "results.jsonl").read_text().splitlines()]
    [second] = [json.loads(line) for line in (split / "results.jsonl").read_text().splitlines()]
    assert not first["resumed"] and "resume" not in first
    assert second["resumed"] and second["resume"]["continued"], second.get("resume")
    assert second["resume"]["loaded"] == "checkpoint_last.pt"
    assert second["resume"]["first_logged_update_after"] == second["resume"]["checkpoint_updates"] + 1
    assert log.read_text().count("\n### ") == 2
    # the same epochs, dev scores and test score as the run that was never killed
    keys = ("epoch", "valid_loss", "valid_metric", "trainset_loss", "train_loss", "addrop_drop")
    assert [{k: e.get(k) for k in keys} for e in second["epochs"]] == \
        [{k: e.get(k) for k in keys} for e in first["epochs"]]
    assert second["test_metric"] == first["test_metric"]
    assert_resumed_to_the_same_end(
        tmp_path / "whole" / "runs" / "ga" / "seed2" / "checkpoints",
        split / "runs" / "ga" / "seed2" / "checkpoints",
        log.read_text().rsplit("\n### ", 1)[1], second["resume"]["checkpoint_updates"],
        "addrop-compare, NER from a converted encoder")
