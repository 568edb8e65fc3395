"""The quick start (addrop-quickstart): English->Romanian on the bundled LibreOffice strings.

Prepares the data, trains a small transformer from scratch with AD-DROP cross-tuning on the CPU
(the packaged recipe ``quickstart``), translates the test set with beam 4 and scores it with
sacrebleu. The terminal gets one line a stage and one line an epoch; everything the tools print
goes to WORK/{prepare,train,translate}.log.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Sequence

from ..data.samples import QUICKSTART_CORPUS
from ..scoring.bleu import corpus_bleu, read_generate_output
from .pipeline import EpochReader, StageFailed, duration, run_stage


def run_quickstart(work, epochs: int = 12, overrides: Sequence[str] = ()) -> int:
    """Runs the three stages in ``work``; returns the exit status (1: a stage failed, its log's
    last lines printed)."""
    work = Path(work)
    data, checkpoints = work / "data", work / "checkpoints"
    python = sys.executable
    # the stages run this interpreter's installed commands; one thread per process is faster
    # on a small or shared machine than threads waiting for each other at every product
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
               PYTHONUNBUFFERED="1")
    start = time.monotonic()

    def stage_done(name: str, began: float, what: str) -> None:
        print(f"{name:<10} {what} ({duration(time.monotonic() - began)})", flush=True)

    try:
        began = time.monotonic()
        counts = {}

        def count_pairs(line: str) -> None:
            name, _, rest = line.partition(": ")
            if rest.endswith(" pairs\n") and name in ("train", "valid", "test"):
                counts[name] = int(rest.split()[0])

        if data.is_dir():
            # addrop-prepare-translation writes its --dest whole or not at all, so an existing one is
            # complete; preparing again could change the dictionary under the saved checkpoints
            print(f"prepare    reusing {data} (prepared by an earlier run)", flush=True)
        else:
            run_stage("prepare", [python, "-m", "addrop_fairseq.cli.prepare_translation", "-s", "en",
                                  "-t", "ro", "--corpus", QUICKSTART_CORPUS, "--valid-size", "300",
                                  "--test-size", "300", "--vocab-size", "4000", "--dest", data],
                      work / "prepare.log", on_line=count_pairs, env=env)
            stage_done("prepare", began,
                       f"{counts.get('train', 0):,} / {counts.get('valid', 0)} / "
                       f"{counts.get('test', 0)} sentence pairs (train / dev / test), 4,000 joint "
                       "sentencepiece pieces")

        print(f"train      a 2-layer transformer from scratch, {epochs} epochs of cross-tuning "
              "(odd plain, even AD-DROP, p = q = 0.3) on the CPU", flush=True)

        def epoch_line(epoch) -> None:
            phase = "AD-DROP" if epoch.train.get("addrop") == "1" else "plain"
            drop = f"drop {float(epoch.train['addrop_drop']):.3f}" if phase == "AD-DROP" else ""
            print(f"  epoch {epoch.number:>2}/{epochs}  {phase:<7}  train loss "
                  f"{epoch.train.get('loss', '?'):>6}  dev loss {epoch.valid.get('loss', '?'):>6}  "
                  f"{drop:<10}  {duration(epoch.seconds)}", flush=True)

        began = time.monotonic()
        reader = EpochReader(epoch_line)
        run_stage("train", [python, "-m", "addrop_fairseq.cli.hydra_train",
                            "--config-name", "quickstart", f"task.data={data / 'bin'}",
                            f"checkpoint.save_dir={checkpoints}", f"optimization.max_epoch={epochs}",
                            *overrides],
                  work / "train.log", on_line=reader, env=env)
        best = min(reader.epochs, key=lambda e: float(e.valid.get("loss", "inf")), default=None)
        stage_done("train", began, f"{len(reader.epochs)} epochs" + (
            f", best dev loss {best.valid['loss']} (epoch {best.number})" if best else ""))

        began = time.monotonic()
        translations = work / "generate.test.txt"
        run_stage("translate", [python, "-m", "addrop_fairseq.cli.generate", data / "bin",
                                "--cpu", "--gen-subset", "test",
                                "--path", checkpoints / "checkpoint_best.pt", "--beam", "4",
                                "--batch-size", "64", "--required-batch-size-multiple", "1",
                                "--post-process", "sentencepiece", "--scoring", "sacrebleu"],
                  work / "translate.log", stdout=translations, env=env)
        hyps, refs = read_generate_output(translations)
        stage_done("translate", began, f"{len(hyps)} test sentences, beam 4")
    except StageFailed as failure:
        print(f"\n{failure.stage} failed (exit status {failure.returncode}); the last lines of "
              f"{failure.log}:", file=sys.stderr)
        for line in failure.last_lines:  # fairseq's configuration is one line of 20,000 characters
            line = line.rstrip("\n")
            print("  " + (line if len(line) <= 300 else line[:300] + " [...]"), file=sys.stderr)
        print(f"(the whole log: {failure.log})", file=sys.stderr)
        return 1

    score, signature = corpus_bleu(hyps, refs)
    print(f"\ndone in {duration(time.monotonic() - start)}; all that fairseq printed is in "
          f"{work}/prepare.log, train.log, translate.log")
    print(f"  checkpoint    {checkpoints / 'checkpoint_best.pt'} (configuration in "
          f"{checkpoints / 'hydra'})")
    print(f"  translations  {translations}")
    print(f"test BLEU, sacrebleu on detokenized text:\n{score} ({len(hyps)} sentences)\n"
          f"signature: {signature}")
    return 0
