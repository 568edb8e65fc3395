"""fairseq's command-line tools as the stages of a pipeline that a person watches.

Each stage's whole output goes, unabridged, to its log file; the terminal gets what this module's
caller prints (one line a stage, one line an epoch). A stage that fails raises StageFailed with
the log's path and its last lines, which is what a person needs to see first.
"""
from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence


class StageFailed(RuntimeError):
    def __init__(self, stage: str, returncode: int, log: Path, last_lines: List[str]):
        self.stage, self.returncode, self.log, self.last_lines = stage, returncode, log, last_lines
        super().__init__(f"{stage} failed (exit status {returncode}); the last lines of {log}:\n"
                         + "".join(last_lines))


def run_stage(stage: str, command: Sequence[str], log: Path, *, stdout: Optional[Path] = None,
              on_line: Optional[Callable[[str], None]] = None, tail: int = 20, **popen) -> None:
    """Runs ``command``; its stderr, and its stdout unless ``stdout`` names a file of its own,
    go to ``log`` as they come, each line also to ``on_line``."""
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    last = deque(maxlen=tail)
    with contextlib.ExitStack() as files:
        log_file = files.enter_context(open(log, "w", encoding="utf-8"))
        process = subprocess.Popen(
            [str(c) for c in command],
            stdout=files.enter_context(open(stdout, "w", encoding="utf-8")) if stdout else subprocess.PIPE,
            stderr=subprocess.PIPE if stdout else subprocess.STDOUT, text=True, bufsize=1, **popen)
        for line in process.stderr if stdout else process.stdout:
            log_file.write(line)
            log_file.flush()
            last.append(line)
            if on_line is not None:
                on_line(line)
        returncode = process.wait()
    if returncode != 0:
        raise StageFailed(stage, returncode, log, list(last))


# fairseq's "simple" log format: the end-of-epoch summaries of training and validation
_VALID = re.compile(r"\bepoch (\d+) \| valid on '([^']+)' subset \| (.*)$")
_TRAIN = re.compile(r"\bepoch (\d+) \| (loss .*)$")


def _fields(text: str) -> Dict[str, str]:
    pairs = (part.strip().split(" ", 1) for part in text.split(" | "))
    return {pair[0]: pair[1] for pair in pairs if len(pair) == 2}


@dataclass
class Epoch:
    number: int
    train: Dict[str, str]
    valid: Dict[str, str] = field(default_factory=dict)  # the first validation subset's
    seconds: float = 0.0


class EpochReader:
    """Feed it fairseq-train's output lines; it calls ``on_epoch`` once an epoch has ended.

    fairseq logs an epoch's validation before its training summary, so the training line closes
    the epoch.
    """

    def __init__(self, on_epoch: Callable[[Epoch], None]):
        self.on_epoch = on_epoch
        self.epochs: List[Epoch] = []
        self._valid: Dict[int, Dict[str, str]] = {}
        self._since = time.monotonic()

    def __call__(self, line: str) -> None:
        line = line.rstrip("\n")
        valid = _VALID.search(line)
        if valid:
            self._valid.setdefault(int(valid.group(1)), _fields(valid.group(3)))
            return
        train = _TRAIN.search(line)
        if train:
            now = time.monotonic()
            number = int(train.group(1))
            epoch = Epoch(number, _fields(train.group(2)), self._valid.pop(number, {}),
                          now - self._since)
            self._since = now
            self.epochs.append(epoch)
            self.on_epoch(epoch)


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"
