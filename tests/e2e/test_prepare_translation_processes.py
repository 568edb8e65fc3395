"""The tests of data/test_prepare_translation.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_prepare_translation import (  # noqa: F401
    Dictionary,
    Path,
    QUICKSTART_CORPUS,
    REPO,
    data_utils,
    leftovers,
    os,
    prepare,
    previous,
    pytest,
    run_cli,
    shutil,
    signal,
    snapshot,
    spm,
    subprocess,
    sys,
    write,
)


@pytest.mark.slow
def test_corpus_round_trips_through_sentencepiece_and_binaries(tmp_path):
    en = (Path(QUICKSTART_CORPUS + ".en")).read_text(encoding="utf-8").split("\n")[:200]
    ro = (Path(QUICKSTART_CORPUS + ".ro")).read_text(encoding="utf-8").split("\n")[:200]
    write(tmp_path / "c.en", en), write(tmp_path / "c.ro", ro)
    run_cli("addrop_fairseq.cli.prepare_translation", "-s", "en", "-t", "ro", "--corpus", tmp_path / "c",
            "--valid-size", "20", "--test-size", "20", "--vocab-size", "800",
            "--dest", tmp_path / "out", "--workers", "1", cwd=REPO)
    out = tmp_path / "out"
    raw_test = (out / "raw/test.ro").read_text(encoding="utf-8").splitlines()
    assert len(raw_test) == 20 and set(raw_test) <= set(ro)
    # the held-out pairs stay aligned
    pairs = dict(zip(en, ro))
    for source, target in zip((out / "raw/test.en").read_text(encoding="utf-8").splitlines(), raw_test):
        assert pairs[source] == target
    dictionary = Dictionary.load(str(out / "bin/dict.ro.txt"))
    dataset = data_utils.load_indexed_dataset(str(out / "bin/test.en-ro.ro"), dictionary)
    processor = spm.SentencePieceProcessor(model_file=str(out / "spm.model"))
    decoded = [processor.decode(dictionary.string(dataset[i]).split()) for i in range(len(dataset))]
    assert decoded == raw_test


@pytest.mark.slow
def test_mismatched_sides_are_named(tmp_path):
    write(tmp_path / "c.en", ["a b c", "d e f"])
    write(tmp_path / "c.ro", ["a b c"])
    result = run_cli("addrop_fairseq.cli.prepare_translation", "-s", "en", "-t", "ro", "--corpus",
                     tmp_path / "c", "--dest", tmp_path / "out", cwd=REPO, check=False)
    assert result.returncode != 0
    assert f"{tmp_path / 'c.en'} has 2 lines but {tmp_path / 'c.ro'} has 1" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_empty_line_is_named_with_its_number(tmp_path):
    write(tmp_path / "c.en", ["a b c", "", "x"])
    write(tmp_path / "c.ro", ["a b c", "d", "y"])
    result = run_cli("addrop_fairseq.cli.prepare_translation", "-s", "en", "-t", "ro", "--corpus",
                     tmp_path / "c", "--dest", tmp_path / "out", cwd=REPO, check=False)
    assert f"{tmp_path / 'c.en'}:2: empty line" in result.stderr


@pytest.mark.slow
def test_existing_dest_is_refused_and_force_replaces_it_whole(previous, tmp_path):
    corpus, built = previous
    dest = tmp_path / "out"
    shutil.copytree(built, dest)
    (dest / "notes.txt").write_text("mine")
    before = snapshot(dest)
    refused = prepare("--corpus", corpus, "--dest", dest, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == (f"addrop-prepare-translation: error: --dest {dest} exists and is not "
                                      "empty; pass --force to replace it whole, or choose another --dest")
    assert snapshot(dest) == before

    # the second run has no test split: with --force, none of the first run's survives
    write(tmp_path / "v.en", ["a small house", "the red door"])
    write(tmp_path / "v.ro", ["o casa mica", "usa rosie"])
    prepare("--train", corpus, "--valid", tmp_path / "v", "--vocab-size", "800", "--dest", dest,
            "--force")
    after = snapshot(dest)
    assert not [name for name in after if "test" in name or name == "notes.txt"], sorted(after)
    assert {"raw/train.en", "raw/valid.ro", "spm.model", "bin/dict.en.txt",
            "bin/valid.en-ro.ro.bin"} <= set(after)
    assert (dest / "raw/valid.en").read_text(encoding="utf-8") == "a small house\nthe red door\n"
    assert leftovers(dest) == []


@pytest.mark.slow
def test_failed_or_interrupted_run_leaves_the_previous_dest_intact(previous, tmp_path):
    corpus, built = previous
    dest = tmp_path / "out"
    shutil.copytree(built, dest)
    before = snapshot(dest)

    # interrupted (Ctrl-C) or killed outright, while it writes
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    for sig in (signal.SIGINT, signal.SIGKILL):
        process = subprocess.Popen(
            [sys.executable, "-m", "addrop_fairseq.cli.prepare_translation", "-s", "en", "-t", "ro", "--corpus",
             str(corpus), "--valid-size", "20", "--test-size", "20", "--vocab-size", "800",
             "--workers", "1", "--dest", str(dest), "--force"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            # a test suite started in the background by a non-interactive shell inherits an
            # ignored SIGINT, and so would the script: Ctrl-C must mean Ctrl-C here
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        for line in process.stdout:
            if line.startswith("train:"):  # the splits are written; sentencepiece is next
                process.send_signal(sig)
                break
        process.communicate(timeout=60)
        assert process.returncode != 0
        assert snapshot(dest) == before, sig
        # Ctrl-C removes the unfinished directory; after a SIGKILL it stays, hidden, until the
        # next run
        assert len(leftovers(dest)) == (0 if sig == signal.SIGINT else 1)
    # fails in its last step (fairseq-preprocess rejects the dictionary): one line, nothing
    # moved, and the killed run's directory is gone too
    (tmp_path / "bad.dict").write_text("only-one-field\n")
    failed = prepare("--corpus", corpus, "--valid-size", "20", "--test-size", "20",
                     "--vocab-size", "800", "--srcdict", tmp_path / "bad.dict", "--dest", dest,
                     "--force", check=False)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    [line] = failed.stderr.strip().splitlines()
    assert line.startswith("addrop-prepare-translation: error: fairseq-preprocess failed: ")
    assert snapshot(dest) == before and leftovers(dest) == []


@pytest.mark.slow
def test_text_input_errors_and_line_ends(tmp_path):
    # a byte that is not UTF-8, named by file, line and column
    (tmp_path / "c.en").write_bytes(b"one\ntwo\nthr\xe9e\n")
    write(tmp_path / "c.ro", ["unu", "doi", "trei"])
    result = prepare("--corpus", tmp_path / "c", "--dest", tmp_path / "out", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"addrop-prepare-translation: error: {tmp_path / 'c.en'}:3: not UTF-8 "
                                     "(byte 0xe9 at column 4)")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path / "out") == []
