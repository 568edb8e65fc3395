"""The tests of convert/test_convert_marian.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_convert_marian import (  # noqa: F401
    REPO,
    contextlib,
    generated,
    io,
    marian_tokenizer,
    math,
    pytest,
    re,
    run_cli,
    small_dir,
    subprocess,
    sys,
    torch,
    toy_pairs,
    trained,
    write_split,
)


@pytest.mark.slow
def test_cli_prints_commands_and_one_line_errors(small_dir, tmp_path):
    script = ["-m", "addrop_fairseq.cli.convert_opus_mt"]
    done = subprocess.run([sys.executable, *script, "convert", str(small_dir), str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    for expected in ("fairseq-preprocess", "--srcdict", "fairseq-train", "--arch addrop_marian",
                     "--marian-activation-fn swish", "--finetune-from-model", "fairseq-generate",
                     "--beam 4"):
        assert expected in done.stdout
    for name in ("model.pt", "dict.en.txt", "dict.ro.txt", "source.spm", "target.spm",
                 "conversion.json"):
        assert (tmp_path / "out" / name).is_file()
    failed = subprocess.run([sys.executable, *script, "convert", str(tmp_path / "nowhere"),
                             str(tmp_path / "out2")], capture_output=True, text=True, cwd=REPO)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith("addrop-convert-opus-mt: error: ")
    assert "Traceback" not in failed.stderr


@pytest.mark.slow
def test_fairseq_generate_then_addrop_fine_tuning_then_sacrebleu(trained, tmp_path, plugin_dir):
    import sacrebleu

    from addrop_fairseq.convert.marian import encode_file

    root, hf_model, conversion = trained
    raw, encoded, data = tmp_path / "raw", tmp_path / "spm", tmp_path / "bin"
    test_pairs = toy_pairs(3, 12)
    for name, pairs in (("train", toy_pairs(1, 96)), ("valid", toy_pairs(2, 12)),
                        ("test", test_pairs)):
        write_split(raw, name, pairs)
        for lang, spm_model in (("en", conversion.source_spm), ("ro", conversion.target_spm)):
            encode_file(spm_model, raw / f"{name}.{lang}", encoded / f"{name}.{lang}")
    run_cli("fairseq_cli.preprocess", "--source-lang", "en", "--target-lang", "ro",
            "--trainpref", encoded / "train", "--validpref", encoded / "valid",
            "--testpref", encoded / "test", "--srcdict", conversion.dictionaries["en"],
            "--tgtdict", conversion.dictionaries["ro"], "--destdir", data, "--workers", "1")
    generate = ["--user-dir", plugin_dir, "--task", "addrop_translation", "-s", "en", "-t", "ro",
                "--gen-subset", "test", "--cpu", "--batch-size", "8",
                *conversion.generate_arguments()]

    # the converted checkpoint, as fairseq-generate --path loads it, translates as transformers
    # does (fairseq-generate's own main, in this process to spare a start-up)
    from fairseq import options
    from fairseq_cli import generate as generate_cli

    before = io.StringIO()
    with contextlib.redirect_stdout(before):
        generate_cli.main(options.parse_args_and_arch(
            options.get_generation_parser(), [str(data), "--path", str(conversion.checkpoint),
                                              *map(str, generate)]))
    pieces, _, _ = generated(before.getvalue())
    tokenizer = marian_tokenizer(root / "hf")
    with torch.no_grad():
        expected = hf_model.generate(
            **tokenizer([p[0] for p in test_pairs], return_tensors="pt", padding=True),
            num_beams=conversion.generation["beam"], early_stopping=True, min_new_tokens=1,
            length_penalty=conversion.generation["lenpen"], bad_words_ids=[[tokenizer.pad_token_id]],
            max_length=int(conversion.generation["max_len_b"]) + 2)
    hf_pieces = [" ".join(t for t in tokenizer.convert_ids_to_tokens(row[1:])
                          if t not in ("<pad>", "</s>")) for row in expected]
    assert len(pieces) == len(test_pairs) and pieces == hf_pieces

    # a few AD-DROP updates through fairseq-train --finetune-from-model, with the printed model options
    save_dir = tmp_path / "checkpoints"
    train = run_cli("fairseq_cli.train", data, "--user-dir", plugin_dir, "--cpu", "--seed", "1",
                    "--task", "addrop_translation", "-s", "en", "-t", "ro",
                    *conversion.model_arguments, "--finetune-from-model", conversion.checkpoint,
                    "--criterion", "addrop_label_smoothed_cross_entropy", "--label-smoothing", "0.1",
                    "--addrop-schedule", "always", "--addrop-p", "0.3", "--addrop-q", "0.3",
                    "--optimizer", "adam", "--lr", "3e-4", "--max-tokens", "600",
                    "--max-update", "4", "--required-batch-size-multiple", "1", "--save-dir", save_dir, "--no-epoch-checkpoints",
                    "--log-format", "simple", "--log-interval", "1")
    log = train.stdout + train.stderr
    assert re.search(r"num_updates[ =]4\b", log), log[-3000:]
    dropped = [float(x) for x in re.findall(r"addrop_drop[ =]([0-9.e+-]+)", log)]
    assert dropped and max(dropped) > 0, log[-3000:]  # AD-DROP masked attention positions
    tuned = torch.load(save_dir / "checkpoint_last.pt", map_location="cpu")["model"]
    original = torch.load(conversion.checkpoint, map_location="cpu")["model"]
    assert not torch.equal(tuned["encoder.layers.0.fc1.weight"], original["encoder.layers.0.fc1.weight"])
    assert torch.equal(tuned["decoder.final_logits_bias"], original["decoder.final_logits_bias"])

    after = run_cli("fairseq_cli.generate", data, "--path", save_dir / "checkpoint_last.pt",
                    *generate, "--post-process", "sentencepiece", "--scoring", "sacrebleu")
    _, hypotheses, references = generated(after.stdout)
    assert references == [p[1] for p in test_pairs]
    bleu = sacrebleu.corpus_bleu(hypotheses, [references])
    reported = float(re.search(r"BLEU = ([0-9.]+)", after.stdout + after.stderr).group(1))
    assert math.isfinite(bleu.score) and abs(bleu.score - reported) < 0.01
