"""The benchmark end to end: every selected variant on one model and batch, the variants
interleaved over the repetitions (the order rotates every repetition) so that drift of the
machine hits them alike; or a sequence-length sweep at constant tokens per batch, one model and
batch per length.
"""
from __future__ import annotations

import argparse
from typing import List, Sequence

import torch

from .memory import measure_memory
from .report import (machine, markdown_table, memory_note, single_text, summarize, sweep_table,
                     sweep_text, write_report)
from .steps import build, free_masks, run_step, variants


def measure(args) -> dict:
    """Times (and unless --no-memory, measures the memory of) every selected variant on one
    model and batch; returns the result dictionary the JSON report holds."""
    bench = build(args)
    selected = [v for v in variants(args.iga_steps) if v.name in args.variant_names]
    tokens = int(bench.sample["ntokens"])
    print(f"model: {args.embed_dim}d ffn {args.ffn_dim} heads {args.heads} layers "
          f"{args.encoder_layers}+{args.decoder_layers} vocab {args.vocab}; batch "
          f"{args.batch_size} x <= {args.seq_len} ({tokens} target tokens); "
          f"{args.device} {args.dtype}, {torch.get_num_threads()} threads", flush=True)

    for variant in selected:  # warm-up: allocator, lazy initialisation, first-call costs
        for _ in range(args.warmup):
            run_step(bench, variant)
    clocks = {"wall": {v.name: [] for v in selected}, "cpu": {v.name: [] for v in selected}}
    for rep in range(args.reps):
        shift = rep % len(selected)
        for variant in selected[shift:] + selected[:shift]:
            wall, cpu = run_step(bench, variant)
            clocks["wall"][variant.name].append(wall)
            clocks["cpu"][variant.name].append(cpu)
        print(f"repetition {rep + 1}/{args.reps}: plain "
              f"{1000 * clocks[args.clock]['plain'][-1]:.1f} ms ({args.clock})", flush=True)
    times = clocks[args.clock]
    memory = {} if args.no_memory else measure_memory(bench, selected)
    rows = summarize(times, memory, selected)
    config = {k: v for k, v in vars(args).items()
              if k not in ("output", "variant_names", "sweep_lengths")}
    return {"config": config, "machine": machine(), "target_tokens": tokens,
            "memory_measure": memory_note(args.device), "rows": rows, "clock": args.clock,
            "times_ms": {clock: {k: [1000 * t for t in v] for k, v in per.items()}
                         for clock, per in clocks.items()}}


def run_benchmark(args: argparse.Namespace, argv: Sequence[str]):
    """Measures, prints the tables and, with ``args.output``, writes the report recording
    ``argv`` as its command; returns the result (a list of them for a sweep)."""
    if args.free_masks:
        free_masks()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.sweep_lengths:
        results: List[dict] = []
        for length in args.sweep_lengths:
            args.seq_len, args.batch_size = length, max(1, args.sweep_tokens // length)
            results.append(measure(args))
            print()
            print(markdown_table(results[-1]["rows"]), flush=True)
        table = sweep_table(results)
        print()
        print(table)
        if args.output is not None:
            write_report(args, argv, sweep_text(args, results, table), results)
        return results
    result = measure(args)
    table = markdown_table(result["rows"])
    print()
    print(table)
    if args.output is not None:
        write_report(args, argv, single_text(args, result, table), result)
    return result
