"""The benchmark's tables and its written report (OUTPUT.md, OUTPUT.json).

The report records the command that made it as ``addrop-benchmark ...`` with every path
relative (to the directory it ran in, or to the report's own directory), and the commit of the
checkout it ran from: none for an installed package.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from .. import PLUGIN_DIR
from .steps import Variant
from ..experiment.relative import relative_command

COMMAND = "addrop-benchmark"


def checkout_commit(package_dir: str = PLUGIN_DIR) -> Optional[str]:
    """The short commit of the git checkout whose own ``addrop_fairseq`` is ``package_dir``.

    None for an installed package: a wheel in site-packages is in no checkout, or in one it is
    not part of (a virtual environment inside a clone), whose commit would say nothing about
    the code that ran.
    """
    package = Path(package_dir).resolve()
    try:
        top = subprocess.run(["git", "-C", str(package), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, timeout=10)
        if top.returncode or Path(top.stdout.strip()).resolve() / package.name != package:
            return None
        commit = subprocess.run(["git", "-C", str(package), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):  # no git on this machine
        return None
    return commit.stdout.strip() or None


def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform(), "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count()}
    try:
        import fairseq
        info["fairseq"] = fairseq.__version__
    except Exception:  # the version is a courtesy in the report
        pass
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["cpu"] = cpu
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    info["commit"] = checkout_commit()
    return info


def summarize(times: Dict[str, List[float]], memory: Dict[str, dict],
              selected: List[Variant]) -> List[dict]:
    median = {name: statistics.median(ts) for name, ts in times.items()}
    plain = median.get("plain")
    off = median.get("addrop-off", plain)
    plain_mem = memory.get("plain", {})
    rows = []
    for variant in selected:
        ts = sorted(times[variant.name])
        q1, q3 = ts[len(ts) // 4], ts[(3 * len(ts)) // 4]
        row = {"variant": variant.name, "description": variant.description,
               "median_ms": 1000 * median[variant.name],
               "spread": (q3 - q1) / median[variant.name] if median[variant.name] else 0.0,
               "repetitions": len(ts)}
        if plain:
            row["time_ratio"] = median[variant.name] / plain
            if variant.runner != "plain" and variant.addrop_epoch:
                # cross-tuning alternates a plain epoch (the criterion's inactive path) with this
                row["cross_tuned_pair_ratio"] = (off + median[variant.name]) / (2 * plain)
        mem = memory.get(variant.name)
        if mem:
            row.update(mem)
            if plain_mem:
                row["memory_ratio"] = mem["peak_bytes"] / plain_mem["peak_bytes"]
                row["step_memory_ratio"] = mem["step_peak_bytes"] / plain_mem["step_peak_bytes"]
        rows.append(row)
    return rows


def markdown_table(rows: List[dict]) -> str:
    head = ("| variant | median ms | spread | time / plain | cross-tuned pair / plain "
            "| peak MB | peak / plain | step peak MB | step peak / plain |")
    lines = [head, "|" + "---|" * 9]

    def fmt(row, key, spec):
        return format(row[key], spec) if key in row else "-"

    for row in rows:
        mb = {k: row[k] / 2**20 for k in ("peak_bytes", "step_peak_bytes") if k in row}
        lines.append(
            f"| {row['variant']} | {row['median_ms']:.1f} | {100 * row['spread']:.0f}% "
            f"| {fmt(row, 'time_ratio', '.2f')}x | "
            + (f"{row['cross_tuned_pair_ratio']:.2f}x" if "cross_tuned_pair_ratio" in row else "-")
            + f" | {mb.get('peak_bytes', float('nan')):.1f} | {fmt(row, 'memory_ratio', '.2f')}x"
            f" | {mb.get('step_peak_bytes', float('nan')):.1f} "
            f"| {fmt(row, 'step_memory_ratio', '.2f')}x |")
    lines.append("")
    lines.extend(f"- `{row['variant']}`: {row['description']}" for row in rows)
    return "\n".join(lines)


def memory_note(device: str) -> str:
    if device == "cuda":
        return ("peak = torch.cuda.max_memory_allocated over one step (model, optimizer state, "
                "activations); step peak = that minus what was allocated when the step began.")
    return ("step peak = maximum of torch's CPU allocator live-byte total during one step "
            "(torch.profiler, profile_memory=True) minus its value at the step's start: "
            "activations, gradients, temporaries; peak = step peak + bytes of the tensors "
            "alive before the step (parameters, optimizer state, batch). Memory outside "
            "torch's allocator is not counted.")


def sweep_table(results: List[dict]) -> str:
    """One line per sequence length: time and step peak memory of each variant against plain."""
    names = [row["variant"] for row in results[0]["rows"] if row["variant"] != "plain"]
    head = ("| L x B | target tokens | plain ms | "
            + " | ".join(f"{n} time" for n in names) + " | "
            + " | ".join(f"{n} step peak" for n in names) + " |")
    lines = [head, "|" + "---|" * (3 + 2 * len(names))]
    for result in results:
        config, rows = result["config"], {row["variant"]: row for row in result["rows"]}
        cells = [f"{config['seq_len']} x {config['batch_size']}", str(result["target_tokens"]),
                 f"{rows['plain']['median_ms']:.1f}"]
        cells += [f"{rows[n]['time_ratio']:.2f}x" for n in names]
        cells += [f"{rows[n]['step_memory_ratio']:.2f}x" if "step_memory_ratio" in rows[n]
                  else "-" for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def recorded_command(argv: Sequence[str], report_dir: Path, cwd: Optional[Path] = None) -> str:
    """``addrop-benchmark ARGS`` as it ran, with no absolute path of this machine in it: paths
    relative to the directory the command ran in, or to the report's own directory for a path
    outside it (experiment.relative)."""
    return relative_command([COMMAND, *map(str, argv)], cwd, outside=report_dir)


def clock_name(args: argparse.Namespace) -> str:
    return "wall-clock" if args.clock == "wall" else "process CPU"


def model_text(args: argparse.Namespace) -> str:
    return (f"Model: {args.embed_dim}d, ffn {args.ffn_dim}, {args.heads} heads, "
            f"{args.encoder_layers}+{args.decoder_layers} layers, vocab {args.vocab}; ")


def single_text(args: argparse.Namespace, result: dict, table: str) -> str:
    """The report's paragraph and table for one model and batch."""
    return (model_text(args)
            + f"batch {args.batch_size} sentences of <= {args.seq_len} tokens "
            f"({result['target_tokens']} target tokens); p={args.p}, q={args.q}; {args.reps} "
            f"interleaved repetitions, medians of {clock_name(args)} time.\n\n{table}")


def sweep_text(args: argparse.Namespace, results: List[dict], table: str) -> str:
    """The report's paragraph, sweep table and per-length tables for a sequence-length sweep."""
    return (model_text(args)
            + f"sequence-length sweep at {args.sweep_tokens} tokens per batch (batch = "
            f"{args.sweep_tokens} // L sentences of 3L/4 to L tokens); p={args.p}, "
            f"q={args.q}; {args.reps} interleaved repetitions, medians of "
            f"{clock_name(args)} time; time and "
            f"step peak memory relative to plain.\n\n{table}\n\n"
            + "\n\n".join(f"### {r['config']['seq_len']} x {r['config']['batch_size']}"
                            f"\n\n{markdown_table(r['rows'])}" for r in results))


def write_report(args: argparse.Namespace, argv: Sequence[str], text: str, result) -> None:
    """Writes OUTPUT.md (the command, the machine, ``text``) and OUTPUT.json (``result``)."""
    base = args.output
    if base.suffix in (".md", ".json"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    command = recorded_command(argv, base.parent)
    first = result[0] if isinstance(result, list) else result
    info = first["machine"]
    Path(f"{base}.md").write_text(
        f"# AD-DROP step cost\n\nCommand: `{command}`\n\n"
        f"Machine: {info.get('cpu')}, {info.get('gpu', 'no GPU')}; torch {info['torch']}, "
        f"{info['threads']} threads; {args.device} {args.dtype}.\n\n{text}\n\n"
        f"Memory: {first['memory_measure']}\n", encoding="utf-8")
    Path(f"{base}.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"\nwrote {base}.md and {base}.json")
