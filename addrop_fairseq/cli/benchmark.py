"""What AD-DROP costs per training step, measured on fairseq's real training step.

One process builds one ``addrop_transformer`` through fairseq (task ``addrop_translation``,
criterion ``addrop_label_smoothed_cross_entropy``, fairseq's Adam, fp16/bf16 through fairseq's
FP16Optimizer) and times one update for every variant: ``task.train_step`` (forward and
backward), the gradient-norm computation and ``optimizer.step()``, as fairseq's Trainer runs
them. The variants share the model, the optimizer and the batch, and are interleaved over the
repetitions (the order rotates every repetition) so that drift of the machine hits them alike;
the table reports medians.

Variants: the plain step (fairseq's own ``label_smoothed_cross_entropy``); the AD-DROP criterion
in a plain epoch of cross-tuning; AD-DROP with GA on layer 0, the encoder, the decoder, both
self-attention stacks, and all three attention kinds; AA; RD; IGA (``--iga-steps``); and the
official code's scheme, re-implemented here as the reference (one ``torch.autograd.grad`` per
layer with ``retain_graph=True``, sort-based masks, the first pass's graph alive until the
second pass's backward is done).

Memory: on CUDA, ``torch.cuda.max_memory_allocated`` over one step (everything allocated:
model, optimizer state, activations). On CPU there is no allocator statistic, so one extra step
per variant runs under ``torch.profiler`` with ``profile_memory=True``: its allocation events
carry the CPU allocator's running total of live bytes, whose maximum minus its value at the
start of the step is the step's peak working memory (activations, gradients, temporaries); the
table adds the bytes of the tensors alive before the step (parameters, optimizer state, batch)
to give the peak total. Both exclude memory outside torch's allocator (Python objects, the
interpreter, the profiler's own buffers).

    addrop-benchmark --preset cpu --output /tmp/bench-cpu
    addrop-benchmark --preset base --device cuda --dtype bf16 --output bench-base

Sequence-length sweep at constant tokens per batch (one model and batch per length):

    addrop-benchmark --preset cpu --sweep 32,64,128,256,512 --sweep-tokens 512 \
        --variants plain,ga-all,rd,official-ga-all --threads 1 --clock cpu --output /tmp/sweep
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import torch

from addrop_fairseq.benchmark.measure import run_benchmark
from addrop_fairseq.benchmark.steps import PRESETS, variants
from addrop_fairseq.cli.policy import run


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    for name in ("embed_dim", "ffn_dim", "heads", "encoder_layers", "decoder_layers", "vocab",
                 "batch_size", "seq_len", "reps", "warmup", "iga_steps"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=None,
                            help=f"overrides the preset's {name}")
    parser.add_argument("--p", type=float, default=0.3, help="--addrop-p")
    parser.add_argument("--q", type=float, default=0.3, help="--addrop-q")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="what the table reports: wall-clock time, or this process's CPU "
                             "time (steadier on a shared machine; with several threads it sums "
                             "their work, spin-waits included). The JSON keeps both.")
    parser.add_argument("--variants", default="all",
                        help="comma-separated variant names (plain is always included)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sweep", default=None, metavar="L1,L2,...",
                        help="sequence-length sweep: one model and batch per length L, with "
                             "--sweep-tokens // L sentences (e.g. 32,64,128,256,512)")
    parser.add_argument("--sweep-tokens", type=int, default=512,
                        help="tokens per batch held constant over --sweep (default 512)")
    parser.add_argument("--free-masks", action="store_true",
                        help="diagnostic: AD-DROP's mask is an all-False one made at no cost "
                             "(the attribution pass, the second pass and its masked kernel are "
                             "unchanged): the floor that no faster mask could go below")
    parser.add_argument("--output", type=Path, default=None,
                        help="writes OUTPUT.md and OUTPUT.json (suffix, if any, is replaced)")
    args = parser.parse_args(argv)
    for name, value in PRESETS[args.preset].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    if args.device == "cuda" and args.clock == "cpu":
        parser.error("--clock cpu measures the host process, not the GPU: use --clock wall")
    if args.device == "cpu" and args.dtype == "fp16":
        parser.error("--dtype fp16 needs --device cuda (fairseq's fp16 path is GPU-only)")
    if args.vocab < 8:
        parser.error(f"--vocab {args.vocab} must be >= 8 (fairseq reserves 4 symbols)")
    if args.reps < 1:
        parser.error(f"--reps {args.reps} must be >= 1")
    if args.embed_dim % args.heads:
        parser.error(f"--embed-dim {args.embed_dim} is not divisible by --heads {args.heads}")
    args.sweep_lengths = []
    if args.sweep:
        try:
            args.sweep_lengths = [int(v) for v in args.sweep.split(",") if v.strip()]
        except ValueError:
            parser.error(f"--sweep {args.sweep!r}: expected comma-separated lengths")
        if not args.sweep_lengths or min(args.sweep_lengths) < 2:
            parser.error(f"--sweep {args.sweep!r}: lengths must be >= 2")
    known = [v.name for v in variants(args.iga_steps)]
    if args.variants != "all":
        chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = [v for v in chosen if v not in known]
        if unknown:
            parser.error(f"--variants: unknown {unknown[0]!r}; known: {', '.join(known)}")
        args.variant_names = ["plain"] + [v for v in chosen if v != "plain"]
    else:
        args.variant_names = known
    return args



def main(argv=None):
    args = parse_args(argv)
    # fairseq's and hydra's start-up chatter (deprecations, INFO logs) would bury the table
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING, force=True)
    return run_benchmark(args, sys.argv[1:] if argv is None else argv)


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()
