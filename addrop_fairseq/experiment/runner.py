"""Runs every (arm, seed) of a spec as its own fairseq-train process, then its test evaluation.

Resumable at two levels: a (arm, seed) recorded as finished in ``results.jsonl`` is never rerun
(its fingerprint, the options that define it, must match), and a run killed mid-way restarts in
the same directory, where fairseq-train resumes from ``checkpoint_last.pt`` (a spec that starts
from a pretrained model must name it with ``--finetune-from-model``, which fairseq loads only while
there is none; the record's ``resume`` says whether the training continued). The time a killed
attempt spent is kept in the run directory's ``attempts.json`` (rewritten every
``Comparison.sample_s`` seconds while it trains), so a resumed run's record counts it.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import dataclasses
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..atomic import replacing, write_text
from ..errors import AddropError
from . import logs, plots, protocols, stats
from .evaluate import evaluate_test
from .relative import relative_command, relative_path
from .resume import checkpoint_updates, continuation, describe, same_start
from .spec import Arm, Spec

RESULTS, SUMMARY, ATTEMPTS = "results.jsonl", "summary.md", "attempts.json"


def fingerprint(spec: Spec, arm: Arm, seed: int) -> str:
    """What defines a run's result; paths of outputs are not part of it."""
    fields = [
        spec.data,
        same_start(spec.train),
        same_start(arm.options),
        seed,
        spec.select_metric,
        spec.maximize,
        spec.test,
        spec.valid_on_train,
    ]
    if spec.report_split:  # only then, so the fingerprints of earlier specs stay as they were
        fields.append(spec.report_split)
    key = json.dumps(fields)
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def read_results(path: Path) -> list[dict]:
    """Every record; a line cut short by a kill (the last one) is ignored."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def latest(records: list[dict], spec: Spec) -> list[dict]:
    """The last record of each (arm, seed) that matches the spec as it is now."""
    current = {
        (arm.name, seed): fingerprint(spec, arm, seed) for arm in spec.arms for seed in spec.seeds
    }
    chosen = {}
    for record in records:
        key = (record.get("arm"), record.get("seed"))
        if current.get(key) == record.get("fingerprint"):
            chosen[key] = record
    return [chosen[key] for key in current if key in chosen]


TRAINSET = "trainset"


def data_with_trainset(data: str, view: Path) -> Path:
    """A directory of links to ``data`` plus a split ``trainset`` that is the training split.

    fairseq caches one batch iterator per dataset object, so ``--valid-subset valid,train``
    validates with the training iterator itself and advances its epoch (epochs 2, 4, 6 ... get
    trained). Under its own name the training split is a separate dataset and iterator.
    """
    source = Path(data).resolve()
    if not source.is_dir():
        raise AddropError(f"data directory {data!r} does not exist")
    tmp = view.with_name(view.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for root, _dirs, files in os.walk(source):
        target = tmp / Path(root).relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            (target / name).symlink_to(Path(root) / name)
            if name.startswith("train."):
                (target / (TRAINSET + name[len("train") :])).symlink_to(Path(root) / name)
    shutil.rmtree(view, ignore_errors=True)
    os.replace(tmp, view)
    return view


try:  # looked up once here: the child, between fork and exec, only calls it
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent():
    # A SIGKILLed runner must not leave a fairseq-train running on, or a restarted runner would
    # train a second process into the same checkpoint directory (Linux: PR_SET_PDEATHSIG).
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)


def code_version() -> str | None:
    """The commit of the plugin's checkout that ran (``+dirty`` with uncommitted changes to it),
    so a record says which code made it; None for an installed package (a wheel's files are not
    tracked by any checkout, even one that holds the environment)."""
    plugin = Path(__file__).resolve().parents[1]
    try:
        tracked = subprocess.run(["git", "-C", str(plugin), "ls-files", "--error-unmatch",
                                  "__init__.py"], capture_output=True, timeout=10).returncode == 0
        if not tracked:
            return None
        commit = subprocess.run(["git", "-C", str(plugin), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(plugin), "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("+dirty" if dirty else "")) or None


def _process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system, with reaped children) of a running process, from Linux's
    /proc; None elsewhere or once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _read_attempts(run_dir: Path) -> list[dict]:
    try:
        attempts = json.loads((run_dir / ATTEMPTS).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    if not isinstance(attempts, list):
        return []
    numbers = (int, float)
    return [
        a
        for a in attempts
        if isinstance(a, dict) and all(isinstance(a.get(k), numbers) for k in ("wall_s", "cpu_s"))
    ]


def _duration(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    return (
        f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{seconds / 60:.1f} min"
    )


class Comparison:
    sample_s = 30.0  # how often a training attempt's time is saved: what a SIGKILL can lose

    def __init__(
        self,
        spec: Spec,
        out_dir,
        work_dir=None,
        jobs: int = 1,
        threads: int = 1,
        keep_checkpoints: bool = False,
        retry_failed: bool = False,
        echo=print,
    ):
        if jobs < 1 or threads < 1:
            raise AddropError(f"--jobs {jobs} / --threads {threads}: both must be at least 1")
        self.spec = spec
        self.out_dir = Path(out_dir)
        self.work_dir = Path(work_dir) if work_dir else self.out_dir / "runs"
        self.jobs, self.threads = jobs, threads
        self.keep_checkpoints, self.retry_failed = keep_checkpoints, retry_failed
        self.echo = echo
        self._lock = threading.Lock()
        self._children: set[subprocess.Popen] = set()
        self.user_dir = self._option("--user-dir")
        self.only: set[str] | None = None

    def restrict(self, names) -> None:
        """Run only these arms (the report still covers every arm)."""
        self.only = set(names)

    def _option(self, name: str):
        options = list(self.spec.train)
        return options[options.index(name) + 1] if name in options[:-1] else None

    @property
    def results_path(self) -> Path:
        return self.out_dir / RESULTS

    def records(self) -> list[dict]:
        return latest(read_results(self.results_path), self.spec)

    def pending(self) -> list[tuple[Arm, int]]:
        done = {
            (r["arm"], r["seed"])
            for r in self.records()
            if r["status"] == "ok" or not self.retry_failed
        }
        return [
            (arm, seed)
            for seed in self.spec.seeds
            for arm in self.spec.arms
            if (arm.name, seed) not in done and (self.only is None or arm.name in self.only)
        ]

    def train_command(
        self, arm: Arm, seed: int, save_dir: Path, data: str | None = None
    ) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "addrop_fairseq.cli.train",
            data or self.spec.data,
            *self.spec.train,
            *arm.options,
            "--seed",
            str(seed),
            "--save-dir",
            str(save_dir),
            "--log-format",
            "json",
            "--no-epoch-checkpoints",
            "--best-checkpoint-metric",
            self.spec.select_metric,
        ]
        if self.spec.maximize:
            command.append("--maximize-best-checkpoint-metric")
        subsets = ["valid"]
        if self.spec.report_split:
            subsets.append(self.spec.report_split)
        if self.spec.valid_on_train:
            subsets.append(TRAINSET)
        if len(subsets) > 1:
            command += ["--valid-subset", ",".join(subsets)]
        return command

    def _env(self) -> dict:
        threads = str(self.threads)
        return dict(
            os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, PYTHONUNBUFFERED="1"
        )

    def _spawn(self, command, log_file, env, on_sample) -> tuple[int, float]:
        """Runs command with its output appended to log_file; (exit code, CPU seconds).
        ``on_sample(cpu_s)`` is called every ``sample_s`` seconds while it runs."""
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
        )
        with self._lock:
            self._children.add(process)
        done = threading.Event()

        def sample():
            while not done.wait(self.sample_s):
                cpu = _process_cpu(process.pid)
                if cpu is not None and not done.is_set():
                    on_sample(cpu)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
        finally:
            done.set()
            sampler.join()
            with self._lock:
                self._children.discard(process)
        return process.returncode, usage.ru_utime + usage.ru_stime

    def run_one(self, arm: Arm, seed: int) -> dict:
        run_dir = self.work_dir / arm.name / f"seed{seed}"
        save_dir = run_dir / "checkpoints"
        run_dir.mkdir(parents=True, exist_ok=True)
        log_path = run_dir / "train.log"
        resumed = (save_dir / "checkpoint_last.pt").exists()
        # what the restarted attempt must continue from, to check afterwards that it did
        updates_before = checkpoint_updates(save_dir / "checkpoint_last.pt") if resumed else None
        log_before = log_path.stat().st_size if resumed and log_path.exists() else 0
        # A run that starts from scratch discards what earlier attempts trained, and their time.
        earlier = _read_attempts(run_dir) if resumed else []
        data = None
        if self.spec.valid_on_train:
            data = str(self.work_dir / "data-with-trainset")
        command = self.train_command(arm, seed, save_dir, data)
        record = {
            "arm": arm.name,
            "seed": seed,
            "fingerprint": fingerprint(self.spec, arm, seed),
            "options": shlex.join(arm.options),
            "grid": arm.grid,
            "command": relative_command(command),
            "run_dir": relative_path(run_dir),
            "resumed": resumed,
        }
        code_at_start = code_version()  # what this attempt runs, whatever changes meanwhile
        start = time.time()
        env = self._env()

        def save_attempt(cpu_s: float) -> None:
            attempt = {"wall_s": round(time.time() - start, 1), "cpu_s": round(cpu_s, 1)}
            write_text(run_dir / ATTEMPTS, json.dumps(earlier + [attempt]) + "\n")

        with open(log_path, "a", encoding="utf-8") as log_file:
            log_file.write(f"\n### {time.strftime('%Y-%m-%d %H:%M:%S')} $ {shlex.join(command)}\n")
            log_file.flush()
            code, cpu = self._spawn(command, log_file, env, save_attempt)
        save_attempt(cpu)
        raw = log_path.read_bytes()
        text = raw.decode("utf-8", "replace")
        if resumed:
            record["resume"] = continuation(
                raw[:log_before].decode("utf-8", "replace"),
                raw[log_before:].decode("utf-8", "replace"), updates_before)
            if not record["resume"]["continued"]:
                self.echo(f"{arm.name} seed {seed}: {describe(record['resume'])}")
        record["epochs"] = logs.parse_epochs(
            text, self.spec.select_metric, self.spec.report_split
        )
        record["best"] = logs.best_epoch(record["epochs"], self.spec.maximize) or {}
        try:
            if code != 0:
                lines = [line for line in text.splitlines() if line.strip()]
                raise AddropError(
                    f"fairseq-train exited {code}: {lines[-1] if lines else ''} "
                    f"(log: {relative_path(log_path)})"
                )
            if not record["best"]:
                raise AddropError(f"{relative_path(log_path)}: no dev {self.spec.select_metric!r} in the log")
            record.update(
                evaluate_test(
                    self.spec.test,
                    self.spec.data,
                    save_dir / "checkpoint_best.pt",
                    run_dir,
                    self.user_dir,
                    env,
                    cpu="--cpu" in self.spec.train,
                )
            )
            if self.spec.report_split:
                # the epoch chosen on dev, scored on the report split in the same validation
                record["test_metric"] = record["best"].get("report_metric")
                if record["test_metric"] is None:
                    raise AddropError(
                        f"{log_path}: no {self.spec.report_split!r} {self.spec.select_metric!r} "
                        f"at the chosen epoch {record['best'].get('epoch')}"
                    )
            record["status"] = "ok"
            if not self.keep_checkpoints:
                shutil.rmtree(save_dir, ignore_errors=True)
        except AddropError as error:
            record.update(status="failed", error=str(error))
        # Times of the whole run: earlier, killed attempts included. A run resumed from a directory
        # without attempts.json (made before it was kept) can count only its last attempt.
        record["attempts"] = len(earlier) + 1
        record["times_complete"] = not resumed or bool(earlier)
        record["wall_s"] = round(time.time() - start + sum(a["wall_s"] for a in earlier), 1)
        record["train_cpu_s"] = round(cpu + sum(a["cpu_s"] for a in earlier), 1)
        walls = [e.get("train_wall") for e in record["epochs"] if e.get("train_wall") is not None]
        record["train_wall_s"] = walls[-1] if walls else None
        record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        record["code"] = code_at_start
        return record

    def _append(self, record: dict) -> None:
        with self._lock, open(self.results_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def stop_children(self) -> None:
        with self._lock:
            for process in self._children:
                process.terminate()

    def _lock_out_dir(self):
        """Held while running: two runners on one directory would run every run twice."""
        lock = open(self.out_dir / ".lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise AddropError(f"{self.out_dir}: another addrop-compare is running on it") from None
        return lock

    def run(self) -> list[dict]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        lock = self._lock_out_dir()
        try:
            return self._run()
        finally:
            lock.close()

    def _run(self) -> list[dict]:
        write_text(self.out_dir / "spec.json", json.dumps(self.spec.to_dict(), indent=2) + "\n")
        if self.spec.valid_on_train:
            data_with_trainset(self.spec.data, self.work_dir / "data-with-trainset")
        todo = self.pending()
        recorded = len(self.records())
        total = recorded + len(todo)
        finished = recorded
        self.echo(
            f"compare: {len(self.spec.arms)} arms x {len(self.spec.seeds)} seeds, {recorded} "
            f"recorded, {len(todo)} to run, {self.jobs} at a time"
        )
        durations = []
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.jobs)
        try:
            futures = {pool.submit(self.run_one, arm, seed): (arm, seed) for arm, seed in todo}
            for future in concurrent.futures.as_completed(futures):
                record = future.result()
                self._append(record)
                finished += 1
                durations.append(record["wall_s"])
                remaining = total - finished
                eta = sum(durations) / len(durations) * remaining / self.jobs
                best = record.get("best") or {}
                if record["status"] == "ok":
                    what = (
                        f"dev {best.get('valid_metric')} (epoch {best.get('epoch')}) "
                        f"test {record.get('test_metric')}"
                    )
                else:
                    what = f"FAILED: {record['error']}"
                self.echo(
                    f"[{finished}/{total}] {record['arm']} seed {record['seed']}: {what}, "
                    f"{_duration(record['wall_s'])}; ETA {_duration(eta) if remaining else 'done'}"
                )
                self.report()
        except BaseException:
            self.stop_children()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        self.report()
        return self.records()

    def summary_path(self, baseline: str | None = None) -> Path:
        """summary.md against the spec's baseline; summary-vs-ARM.md against another arm."""
        if baseline is None or baseline == self.spec.baseline:
            return self.out_dir / SUMMARY
        return self.out_dir / f"summary-vs-{baseline}.md"

    def report(self, baseline: str | None = None) -> Path:
        """summary.md and the PNGs from what results.jsonl holds now (each file replaced whole).

        With ``baseline`` another arm than the spec's, only the summary is written, every arm
        paired against that one, to ``summary-vs-BASELINE.md`` beside the spec's own; returns
        the summary's path."""
        records = self.records()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.summary_path(baseline)
        if path.name != SUMMARY:
            self.spec.arm(baseline, "--baseline")
            spec = dataclasses.replace(self.spec, baseline=baseline)
        else:
            spec = self.spec
        title = self.out_dir.name + ("" if spec is self.spec else f", against {baseline}")
        text = f"# Comparison: {title}\n\n" + stats.summarise(spec, records, True)
        if spec.report_split:
            text += "\n" + protocols.summarise(spec, records)
        write_text(path, text)
        if path.name != SUMMARY:
            return path
        ok = [r for r in records if r["status"] == "ok"]
        if not ok:
            return path
        by_arm = {arm.name: [r for r in ok if r["arm"] == arm.name] for arm in self.spec.arms}
        with replacing(self.out_dir / "curves.png") as (tmp,):
            plots.plot_curves(
                by_arm,
                stats.metric_label(self.spec.select_metric),
                tmp,
                title=self.out_dir.name,
                report_split=self.spec.report_split,
            )
        grid_arms = [arm for arm in self.spec.arms if set(arm.grid) == {"p", "q"}]
        if grid_arms:
            base = {r["seed"]: r for r in by_arm[self.spec.baseline]}
            for split, field in (("dev", "valid_metric"), ("test", "test_metric")):
                gains = {}
                for arm in grid_arms:

                    def value(r):
                        return (
                            r["best"].get("valid_metric")
                            if field == "valid_metric"
                            else r.get(field)
                        )

                    paired = stats.paired_difference(
                        {r["seed"]: value(r) for r in by_arm[arm.name]},
                        {s: value(r) for s, r in base.items()},
                    )
                    if paired is not None:
                        gains[(float(arm.grid["p"]), float(arm.grid["q"]))] = paired.mean
                if gains:
                    metric = (
                        stats.metric_label(self.spec.select_metric)
                        if split == "dev"
                        else stats.test_metric_name(self.spec)
                    )
                    with replacing(self.out_dir / f"heatmap_{split}.png") as (tmp,):
                        plots.plot_heatmap(
                            gains,
                            tmp,
                            f"{split} {metric}: mean gain over {self.spec.baseline} (paired)",
                        )
        return path
