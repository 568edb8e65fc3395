"""Sanity check of the attribution's sign (paper section 2.2, Fig. 2).

Trains the same model from the same seed twice on prepared translation data, with AD-DROP on in
every epoch, once dropping among the lowest-attributed keys (``--addrop-strategy low``) and once
among the highest (``high``, the method), then prints both training losses after the same number
of updates: the loss fairseq logs while training (with the masks) and the loss on the training
set without masks (a validation pass over the train subset). Dropping high-attribution positions
should slow fitting, so ``low`` should end lower on both. Expect the masked loss of ``low`` to
fall far below its unmasked one: masks chosen with the gold label leak it, which is the paper's
point (fast fitting of the training data, poor generalisation).

As in section 2.2, the attribution target is the gold label's log-probability by default
(``--target gold``). With ``--target pseudo`` (AD-DROP's own target) a model trained from scratch
attributes its argmax, which for most tokens is not the reference yet, so the two strategies
need not separate in the loss against the reference; that is expected, not a sign error.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from addrop_fairseq.cli.policy import run

from addrop_fairseq import PLUGIN_DIR as PLUGIN


def train(data, strategy, args, save_dir):
    command = [
        sys.executable, "-m", "fairseq_cli.train", str(data), "--user-dir", PLUGIN, "--cpu",
        "--task", "addrop_translation", "--addrop-schedule", "always",
        "--arch", "addrop_transformer", "--share-all-embeddings",
        "--encoder-layers", "2", "--decoder-layers", "2", "--encoder-embed-dim", "64",
        "--decoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128",
        "--decoder-ffn-embed-dim", "128", "--encoder-attention-heads", "4",
        "--decoder-attention-heads", "4", "--dropout", "0.0",
        "--criterion", "addrop_label_smoothed_cross_entropy", "--label-smoothing", "0.0",
        "--addrop-p", str(args.p), "--addrop-q", str(args.q), "--addrop-strategy", strategy,
        "--addrop-target", args.target,
        "--optimizer", "adam", "--lr", "2e-3", "--lr-scheduler", "inverse_sqrt",
        "--warmup-updates", "50", "--max-tokens", "4000", "--max-update", str(args.updates),
        "--valid-subset", "train", "--validate-interval-updates", str(args.updates),
        "--seed", str(args.seed),
        "--save-dir", str(save_dir), "--no-save", "--log-format", "simple",
        "--log-interval", "1000",
    ]
    out = subprocess.run(command, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    if out.returncode != 0:
        sys.exit(out.stdout[-3000:] + out.stderr[-3000:])
    log = out.stdout + out.stderr
    masked = re.findall(r"\| train \| epoch \d+ \| loss ([\d.]+)", log)[-1]
    # fairseq tags a validation line with the subset's name, here "train"
    clean = re.findall(r"\| epoch \d+ \| valid on 'train' subset \| loss ([\d.]+)", log)[-1]
    return float(masked), float(clean)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="fairseq binary data dir, e.g. runs/quickstart/data/bin")
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--p", type=float, default=0.3)
    parser.add_argument("--q", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", default="gold", choices=["gold", "pseudo"],
                        help="attribution target (section 2.2 uses the gold label)")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in ("low", "high"):
            results[strategy] = train(args.data, strategy, args, Path(tmp) / strategy)
            print(f"--addrop-strategy {strategy:4s}: training loss after {args.updates} updates: "
                  f"{results[strategy][0]:.3f} (with masks), {results[strategy][1]:.3f} "
                  f"(train set, no masks)", flush=True)
    holds = all(low < high for low, high in zip(results["low"], results["high"]))
    print(f"dropping low-attribution positions fits faster than dropping high ones: "
          f"{'yes' if holds else 'NO'} (target {args.target}, p={args.p}, q={args.q}, "
          f"seed {args.seed})")
    return 0 if holds else 1


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()
