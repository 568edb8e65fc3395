"""Two selection protocols read from the same runs: held-out against the paper's.

Every run of a spec with ``report_split`` logs, per epoch, its score on the selection split
(fairseq's ``valid``: drawn from the training data) and on the report split (the official GLUE
dev split, which plays the test set since GLUE's test labels are hidden). From these logs:

- **held-out**: each run's epoch is the one best on the selection split, and (for a p x q grid)
  the cell is the one whose mean selection score over seeds is best; what is reported is the
  report-split score there. Nothing reported was looked at to choose it.
- **paper's**: each run's epoch is the one best on the report split, and the cell the one whose
  mean of those scores is best; the report split's score there is reported. This is the
  official AD-DROP code's practice (early stopping and the p, q search on GLUE dev, dev
  reported).

The difference of an arm's gain over the baseline under the two protocols is the *optimism* of
selecting on the reported split. The baseline is treated the same way in each protocol (its epoch
chosen on the selection split, or on the report split). Ties go to the later epoch (fairseq's
``checkpoint_best.pt`` rule) and to the earlier cell in the spec's order. Cells are chosen on the
seeds that every grid arm and the baseline finished, so each cell is judged on the same seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

from .stats import Paired, paired_difference

HELD_OUT, PAPER = "held-out", "paper's"


def best_epoch(epochs: list[dict], key: str, maximize: bool) -> dict | None:
    """The epoch with the best ``key`` (the later one on a tie); None if no epoch has it."""
    best = None
    for record in epochs:
        value = record.get(key)
        if value is None:
            continue
        if best is None or (value >= best[key] if maximize else value <= best[key]):
            best = record
    return best


@dataclass
class RunScore:
    epoch: int
    selection: float | None  # the selection-split score at that epoch
    reported: float  # the report-split score at that epoch


def run_score(record: dict, protocol: str, maximize: bool) -> RunScore | None:
    """A run's chosen epoch under a protocol, and its scores there."""
    key = "valid_metric" if protocol == HELD_OUT else "report_metric"
    chosen = best_epoch(record.get("epochs", []), key, maximize)
    if chosen is None or chosen.get("report_metric") is None:
        return None
    return RunScore(chosen["epoch"], chosen.get("valid_metric"), chosen["report_metric"])


def scores_by_seed(records, arm: str, protocol: str, maximize: bool) -> dict[int, RunScore]:
    """Seed -> the finished run's score under a protocol (the last finished record of a seed)."""
    scores = {}
    for record in records:
        if record.get("arm") == arm and record.get("status") == "ok":
            score = run_score(record, protocol, maximize)
            if score is not None:
                scores[record["seed"]] = score
    return scores


@dataclass
class Outcome:
    protocol: str
    arm: str  # for the grid: the chosen cell
    seeds: list[int]
    reported: dict[int, float]  # seed -> the arm's reported score
    baseline: dict[int, float]  # seed -> the baseline's reported score (same protocol)
    gain: Paired | None


def outcome(records, arm: str, baseline: str, protocol: str, maximize: bool) -> Outcome:
    arm_scores = scores_by_seed(records, arm, protocol, maximize)
    base_scores = scores_by_seed(records, baseline, protocol, maximize)
    reported = {s: v.reported for s, v in arm_scores.items()}
    base = {s: v.reported for s, v in base_scores.items()}
    gain = paired_difference(reported, base)
    return Outcome(protocol, arm, sorted(set(reported) & set(base)), reported, base, gain)


def choose_cell(records, cells: list[str], baseline: str, protocol: str,
                maximize: bool) -> tuple[str | None, dict[str, float]]:
    """The grid cell a protocol picks and each cell's criterion (its mean over the common
    seeds of the selection score, held-out, or of the reported score, paper's)."""
    per_cell = {cell: scores_by_seed(records, cell, protocol, maximize) for cell in cells}
    seeds = set(scores_by_seed(records, baseline, protocol, maximize))
    for scores in per_cell.values():
        seeds &= set(scores)
    if not seeds:
        return None, {}
    criterion = {}
    for cell, scores in per_cell.items():
        values = [scores[s].selection if protocol == HELD_OUT else scores[s].reported
                  for s in sorted(seeds)]
        if any(v is None for v in values):
            continue
        criterion[cell] = sum(values) / len(values)
    chosen = None
    for cell in cells:  # spec order: the earlier cell wins a tie
        if cell not in criterion:
            continue
        if chosen is None or (criterion[cell] > criterion[chosen] if maximize
                              else criterion[cell] < criterion[chosen]):
            chosen = cell
    return chosen, criterion


def optimism(held_out: Outcome, paper: Outcome) -> Paired | None:
    """Paper's gain minus held-out gain, paired over the seeds both have."""
    paper_diff = {s: paper.reported[s] - paper.baseline[s] for s in paper.seeds}
    held_diff = {s: held_out.reported[s] - held_out.baseline[s] for s in held_out.seeds}
    return paired_difference(paper_diff, held_diff)


def compare(spec, records: list[dict]) -> dict:
    """Both protocols for every non-baseline arm (grid cells one by one) and, with a grid, for
    the cell each protocol chooses: {"arms": {name: {protocol: Outcome, "optimism": Paired}},
    "grid": {protocol: (cell, criterion by cell, Outcome), "optimism": Paired} or None}."""
    maximize = spec.maximize
    result = {"arms": {}, "grid": None}
    for arm in spec.arms:
        if arm.name == spec.baseline:
            continue
        held = outcome(records, arm.name, spec.baseline, HELD_OUT, maximize)
        paper = outcome(records, arm.name, spec.baseline, PAPER, maximize)
        result["arms"][arm.name] = {HELD_OUT: held, PAPER: paper, "optimism": optimism(held, paper)}
    cells = [arm.name for arm in spec.arms if set(arm.grid) == {"p", "q"}]
    if cells:
        grid = {}
        for protocol in (HELD_OUT, PAPER):
            cell, criterion = choose_cell(records, cells, spec.baseline, protocol, maximize)
            chosen = outcome(records, cell, spec.baseline, protocol, maximize) if cell else None
            grid[protocol] = (cell, criterion, chosen)
        held, paper = grid[HELD_OUT][2], grid[PAPER][2]
        grid["optimism"] = optimism(held, paper) if held and paper else None
        result["grid"] = grid
    return result


def paired_text(paired: Paired | None) -> str:
    if paired is None:
        return "n/a"
    if paired.n < 2:
        return f"{paired.mean:+.2f} (1 seed)"
    return f"{paired.mean:+.2f} [{paired.low:.2f}, {paired.high:.2f}]"


def _mean(values) -> str:
    values = [v for v in values if v is not None]
    return f"{sum(values) / len(values):.2f}" if values else "n/a"


def summarise(spec, records: list[dict]) -> str:
    """Markdown: both protocols side by side, per arm and for the grid's chosen cell."""
    result = compare(spec, records)
    split = spec.report_split
    lines = [
        f"## Two protocols on the same runs (reported: `{split}`)",
        "",
        f"Held-out: epoch (and grid cell) chosen on the selection split `valid`, `{split}` "
        f"reported. Paper's: epoch (and cell) chosen on `{split}` itself. Gains are paired "
        f"against `{spec.baseline}` chosen the same way (95% t interval); optimism = paper's "
        "gain minus held-out gain, paired over seeds.",
        "",
        f"| arm | seeds | held-out: mean `{split}` | held-out gain | paper's: mean `{split}` "
        "| paper's gain | optimism |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in result["arms"].items():
        held, paper = row[HELD_OUT], row[PAPER]
        lines.append(
            f"| {name} | {len(held.seeds)} | {_mean(held.reported.values())} "
            f"| {paired_text(held.gain)} "
            f"| {_mean(paper.reported.values())} | {paired_text(paper.gain)} "
            f"| {paired_text(row['optimism'])} |"
        )
    grid = result["grid"]
    if grid:
        lines += ["", "The p x q grid, each protocol choosing its cell:", "",
                  "| protocol | cell chosen | its criterion (mean over seeds) | gain of that cell "
                  f"on `{split}` |", "| --- | --- | --- | --- |"]
        for protocol in (HELD_OUT, PAPER):
            cell, criterion, chosen = grid[protocol]
            what = "selection score" if protocol == HELD_OUT else f"`{split}` score"
            lines.append(
                f"| {protocol} | {cell or 'n/a'} "
                f"| {what} {criterion[cell]:.2f} | {paired_text(chosen.gain if chosen else None)} |"
                if cell else f"| {protocol} | n/a | n/a | n/a |"
            )
        lines += ["", f"Optimism of choosing the cell and epochs on `{split}`: "
                  f"{paired_text(grid['optimism'])}."]
    return "\n".join(lines) + "\n"
