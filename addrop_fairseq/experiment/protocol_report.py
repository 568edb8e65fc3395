"""docs/results.md's GLUE tables: every run under both protocols, beside the paper's numbers.

Reads the effects file (experiment/effects.py) and reports each study whose spec has a
``report_split`` (the GLUE studies: the official dev split plays the test set). Per study:

- every run's official dev score at the epoch the held-out protocol chooses (best on the
  selection split) and at the one the paper's protocol chooses (best on the official dev split
  itself), the epoch beside each (experiment/protocols.py);
- per arm, mean +- std under each protocol, the paired gain over the baseline with its 95% t
  interval, and the optimism (paper's gain minus held-out gain, paired over seeds);
- the paper's own numbers for the same setting, from the study's ``paper`` entry::

      paper:                    # dev, mean +- std over 5 seeds, selected on dev (its protocol)
        - {source: Table 5, model: RoBERTa-base, plain: [91.44, 0.17], addrop: [92.61, 0.13]}

  (no entry: the number is not in this project's copy of the paper; ``paper_note`` says why);
- with ``reference: FILE.jsonl`` (relative to the effects file; shown once it exists), the
  baseline against examples/glue/compare/hf_reference.py's plain runs on the same split, under
  both protocols, with Welch's interval (two programs: seeds are not paired).

and above them one overview row per study. A planned study without results is listed as not yet
run; one still running says how many of its runs have landed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import AddropError
from . import protocols, stats
from .protocols import paired_text
from .stats import mean_pm
from .effects import load_effects_file
from .runner import RESULTS, read_results
from .spec import load_spec

PROTOCOLS = (protocols.HELD_OUT, protocols.PAPER)


@dataclass
class PaperRow:
    source: str  # "Table 5"
    model: str
    plain: tuple[float, float]  # mean, std
    addrop: tuple[float, float]

    @property
    def gain(self) -> float:
        return self.addrop[0] - self.plain[0]


@dataclass
class Study:
    label: str
    setting: str
    metric: str
    directory: Path
    spec_file: str | None  # the spec as the repository holds it (relative to the root)
    spec: object | None  # None: not run yet
    records: list[dict]
    paper: list[PaperRow]
    paper_note: str | None
    reference: list[dict] | None = None  # the Hugging Face reference loop's records, if any
    reference_file: str | None = None
    name: str = ""  # the study's directory as the effects file names it (glue/full-rte)

    @property
    def runs_done(self) -> int:
        finished = {(r["arm"], r["seed"]) for r in self.records if r.get("status") == "ok"}
        return len(finished)

    @property
    def runs_planned(self) -> int:
        return len(self.spec.arms) * len(self.spec.seeds) if self.spec else 0


def _pair(value, where: str) -> tuple[float, float]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) for v in value)):
        raise AddropError(f"{where}: expected [mean, std], got {value!r}")
    return float(value[0]), float(value[1])


def _paper_rows(study: dict, where: str) -> list[PaperRow]:
    rows = []
    for i, entry in enumerate(study.get("paper") or []):
        at = f"{where}: paper[{i}]"
        if not isinstance(entry, dict):
            raise AddropError(f"{at}: expected a mapping, got {entry!r}")
        for key in ("source", "model"):
            if not isinstance(entry.get(key), str):
                raise AddropError(f"{at}: no {key!r}")
        rows.append(PaperRow(entry["source"], entry["model"],
                             _pair(entry.get("plain"), f"{at}.plain"),
                             _pair(entry.get("addrop"), f"{at}.addrop")))
    return rows


def collect(path) -> list[Study]:
    """The effects file's studies that report a split of their own, with their records."""
    path = Path(path)
    studies = []
    for i, entry in enumerate(load_effects_file(path)):
        where = f"{path}: studies[{i}] ({entry['dir']})"
        directory = path.parent / entry["dir"]
        paper = _paper_rows(entry, where)
        spec_path, results_path = directory / "spec.json", directory / RESULTS
        if spec_path.is_file() and results_path.is_file():
            spec = load_spec(spec_path)
            if not spec.report_split:
                continue
            records = read_results(results_path)
        elif entry.get("planned"):
            if "spec" not in entry:  # only a study meant for this report waits for it here
                continue
            spec, records = None, []
        else:
            raise AddropError(f"{where}: no results there (no {spec_path} or {results_path})")
        reference = None
        if entry.get("reference") and (path.parent / entry["reference"]).is_file():
            reference = read_results(path.parent / entry["reference"])
        studies.append(Study(entry["label"], entry["setting"], entry.get("metric", ""),
                             directory, entry.get("spec"), spec, records, paper,
                             entry.get("paper_note"), reference,
                             (path.parent / entry["reference"]).as_posix()
                             if entry.get("reference") else None, entry["dir"]))
    if not studies:
        raise AddropError(f"{path}: no study with a report split (report_split in its spec)")
    return studies


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _paper_gain(study: Study) -> str:
    if not study.paper:
        return "not in the project's copy"
    return "; ".join(f"{row.gain:+.2f} ({row.model}, {row.source})" for row in study.paper)


def _arms(study: Study) -> list[str]:
    return [arm.name for arm in study.spec.arms if arm.name != study.spec.baseline]


def _cells(study: Study) -> list[str]:
    return [arm.name for arm in study.spec.arms if set(arm.grid) == {"p", "q"}]


def _scores(study: Study, arm: str, protocol: str) -> dict[int, protocols.RunScore]:
    return protocols.scores_by_seed(study.records, arm, protocol, study.spec.maximize)


def overview(studies: list[Study]) -> list[str]:
    arms = []  # a grid's cells have no columns: its row shows the cell each protocol chose
    for study in studies:
        if study.spec:
            arms += [a for a in _arms(study) if a not in arms and a not in _cells(study)]
    arms = arms or ["ga"]
    header = "| study | runs | plain, held-out |" + "".join(
        f" {a.upper()} - plain: held-out | {a.upper()} - plain: paper's protocol |" for a in arms
    ) + " the paper: AD-DROP - plain |"
    lines = [header, "| " + " | ".join(["---"] * (4 + 2 * len(arms))) + " |"]
    for study in studies:
        if not study.spec:
            lines.append(f"| {study.label} | not yet run |" + " |" * (1 + 2 * len(arms))
                         + f" {_paper_gain(study)} |")
            continue
        compared = protocols.compare(study.spec, study.records)
        base = _scores(study, study.spec.baseline, protocols.HELD_OUT)
        label = study.label
        if compared["grid"]:  # the GA columns: the cell each protocol chose, named
            chosen = [compared["grid"][p][0] or "none" for p in PROTOCOLS]
            label += f" (GA: the cell chosen, {' / '.join(chosen)})"
            outcomes = {"ga": {p: compared["grid"][p][2] for p in PROTOCOLS}}
        else:
            outcomes = compared["arms"]
        row = (f"| {label} | {study.runs_done} / {study.runs_planned} "
               f"| {mean_pm(s.reported for s in base.values())} |")
        for arm in arms:
            outcome = outcomes.get(arm)
            row += "".join(
                f" {paired_text(outcome[p].gain) if outcome and outcome[p] else ''} |"
                for p in PROTOCOLS)
        lines.append(row + f" {_paper_gain(study)} |")
    return lines


def _time(study: Study) -> str:
    finished = [r for r in study.records if r.get("status") == "ok"]
    cpu = [r["train_cpu_s"] for r in finished if r.get("train_cpu_s") is not None]
    wall = [r["wall_s"] for r in finished if r.get("wall_s") is not None]
    if not cpu:
        return "times not recorded"
    return (f"training CPU {sum(cpu) / 60:.0f} min in all ({sum(cpu) / 60 / len(cpu):.1f} min a "
            f"run), wall {sum(wall) / 60:.0f} min of runs")


def study_section(study: Study, link) -> list[str]:
    spec_text = f"[`{study.spec_file}`]({link(study.spec_file)})" if study.spec_file else "its spec"
    if not study.spec:
        return [f"#### {study.label}", "", f"{study.setting}. Spec {spec_text}: not yet run.",
                *_paper_sentences(study), ""]
    spec = study.spec
    arms = [spec.baseline] + _arms(study)
    codes = sorted({r["code"][:7] for r in study.records if r.get("code")})
    done, planned = study.runs_done, study.runs_planned
    state = "all runs" if done >= planned else f"running: {done} of {planned} runs so far"
    lines = [
        f"#### {study.label} ({done} / {planned} runs)",
        "",
        f"{study.setting}; {study.metric or spec.report_split}. Spec {spec_text}, {state}, "
        f"code {', '.join(codes) or 'n/a'}; {_time(study)}.",
        "",
        f"`addrop-compare {study.spec_file or 'SPEC'} --out {study.directory.as_posix()} "
        f"--work-dir runs/compare/{study.name} --jobs 2 --threads 1`",
        "",
        "Every run: the official dev score at the epoch the held-out protocol chooses (best on "
        "the selection split) / at the epoch the paper's protocol chooses (best on the official "
        "dev split itself); the epochs in brackets.",
        "",
        "| seed | " + " | ".join(arms) + " |",
        "| --- | " + " | ".join("---" for _ in arms) + " |",
    ]
    scores = {a: {p: _scores(study, a, p) for p in PROTOCOLS} for a in arms}
    seeds = sorted({s for a in arms for s in scores[a][protocols.HELD_OUT]})
    for seed in seeds:
        cells = []
        for arm in arms:
            held = scores[arm][protocols.HELD_OUT].get(seed)
            paper = scores[arm][protocols.PAPER].get(seed)
            cells.append(
                f"{_num(held.reported)} ({held.epoch}) / {_num(paper.reported)} ({paper.epoch})"
                if held and paper else "not run yet"
            )
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    compared = protocols.compare(spec, study.records)["arms"]
    lines += [
        "",
        f"| arm | held-out: mean +- std | gain over {spec.baseline} [95% CI] | higher / lower "
        f"| paper's protocol: mean +- std | gain [95% CI] | optimism [95% CI] |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arm in arms:
        held = mean_pm(s.reported for s in scores[arm][protocols.HELD_OUT].values())
        paper = mean_pm(s.reported for s in scores[arm][protocols.PAPER].values())
        if arm == spec.baseline:
            lines.append(f"| {arm} | {held} | | | {paper} | | |")
            continue
        row = compared[arm]
        gain = row[protocols.HELD_OUT].gain
        wins = f"{gain.wins} / {gain.losses}" if gain else "n/a"
        lines.append(
            f"| {arm} | {held} | {paired_text(gain)} | {wins} | {paper} "
            f"| {paired_text(row[protocols.PAPER].gain)} | {paired_text(row['optimism'])} |"
        )
    for paper_row in study.paper:
        lines.append(
            f"| the paper, {paper_row.source} ({paper_row.model}) | | | | plain "
            f"{paper_row.plain[0]:.2f} +- {paper_row.plain[1]:.2f}, AD-DROP "
            f"{paper_row.addrop[0]:.2f} +- {paper_row.addrop[1]:.2f} | {paper_row.gain:+.2f} | |"
        )
    if not study.paper:
        lines += _paper_sentences(study)
    if _cells(study):
        lines += _grid_lines(study, link)
    if study.reference:
        lines += _reference_lines(study, link)
    return lines + [""]


def _reference_lines(study: Study, link) -> list[str]:
    """The baseline against the Hugging Face reference loop: two programs, so their seeds are
    not paired; Welch's interval of the difference of the means."""
    spec = study.spec
    lines = ["", f"`{spec.baseline}` against the Hugging Face reference loop (plain fine-tuning "
             "with transformers, same splits and settings: "
             f"[`{Path(study.reference_file).name}`]({link(study.reference_file)}); seeds of two "
             "programs are not paired, so Welch's 95% interval):", "",
             "| protocol | fairseq: mean +- std (seeds) | Hugging Face: mean +- std (seeds) "
             "| fairseq - Hugging Face [Welch 95% CI] |", "| --- | --- | --- | --- |"]
    for protocol in PROTOCOLS:
        ours = [s.reported for s in _scores(study, spec.baseline, protocol).values()]
        theirs = [s.reported for s in protocols.scores_by_seed(
            study.reference, "hf-plain", protocol, spec.maximize).values()]
        welch = stats.welch_difference(ours, theirs)
        interval = (f"{welch.mean:+.2f} [{welch.low:.2f}, {welch.high:.2f}]"
                    if not math.isnan(welch.low) else f"{welch.mean:+.2f}")
        lines.append(f"| {protocol} | {mean_pm(ours)} ({len(ours)}) | {mean_pm(theirs)} "
                     f"({len(theirs)}) | {interval} |")
    return lines


def _grid_lines(study: Study, link) -> list[str]:
    grid = protocols.compare(study.spec, study.records)["grid"]
    lines = ["", "The p x q cell each protocol chooses (the mean over the seeds every cell and "
             f"{study.spec.baseline} finished) and its gain on the official dev split:", "",
             "| protocol | cell chosen | chosen by (mean over seeds) | gain [95% CI] |",
             "| --- | --- | --- | --- |"]
    for protocol in PROTOCOLS:
        cell, criterion, chosen = grid[protocol]
        what = "selection split" if protocol == protocols.HELD_OUT else "official dev split"
        lines.append(
            f"| {protocol} | {cell} | {what} {criterion[cell]:.2f} | "
            f"{paired_text(chosen.gain if chosen else None)} |" if cell
            else f"| {protocol} | none yet | | |")
    lines += ["", "Optimism of choosing the cell and the epochs on the reported split (paper's "
              f"gain minus held-out gain, paired over seeds): {paired_text(grid['optimism'])}."]
    heatmaps = [name for name in ("heatmap_dev.png", "heatmap_test.png")
                if (study.directory / name).is_file()]
    if heatmaps:
        lines += ["", "Heatmaps (paper Fig. 6) of each cell's mean over seeds: " + ", ".join(
            f"[{name}]({link((study.directory / name).as_posix())})" for name in heatmaps) + "."]
    return lines


def _paper_sentences(study: Study) -> list[str]:
    if not study.paper:
        note = f": {study.paper_note}" if study.paper_note else ""
        return ["", f"The paper's number for this setting is not in the project's copy{note}."]
    return ["", "The paper: " + "; ".join(
        f"{row.source} ({row.model}) plain {row.plain[0]:.2f} +- {row.plain[1]:.2f}, AD-DROP "
        f"{row.addrop[0]:.2f} +- {row.addrop[1]:.2f} ({row.gain:+.2f})" for row in study.paper
    ) + "."]


def report(studies: list[Study], command: str, link=lambda path: path) -> str:
    """Markdown: the overview table, then every study's section. ``link`` maps a path relative
    to the repository root to a link from the document the text goes into."""
    lines = [
        f"<!-- written by `{command}`; do not edit -->",
        "",
        "Official dev score (accuracy; CoLA: MCC) of each arm under the held-out protocol (epoch "
        "chosen on the selection split) and the paper's (epoch chosen on the official dev split), "
        "gains paired by seed with their 95% t intervals. The paper's column is its own gain in "
        "the same setting (BERT-base or RoBERTa-base, selected on dev): compare gains, not levels.",
        "",
        *overview(studies),
        "",
    ]
    for study in studies:
        lines += study_section(study, link)
    return "\n".join(lines).rstrip("\n") + "\n"


START, END = "<!-- protocol-report:start -->", "<!-- protocol-report:end -->"


def insert(document: str, text: str, where: str) -> str:
    """``document`` with the text between its START and END markers replaced by ``text``."""
    start, end = document.find(START), document.find(END)
    if start < 0 or end < start:
        raise AddropError(f"{where}: no {START} ... {END} markers to write the report between")
    return document[: start + len(START)] + "\n" + text + document[end:]


def linker(into: Path):
    """Links from the document ``into`` to paths given relative to the working directory."""
    return lambda path: Path(os.path.relpath(Path(path), into.parent)).as_posix()
