"""The training runs of a sweep (`recgpt experiments main|ablations`), shared by copies run side by side.

A sweep plans its runs as jobs (a run folder and its config over the sweep's base config), trains them with
`train_jobs`, then writes its tables from the folders' metrics.json. A run with a metrics.json is finished and
reused, so a killed sweep resumes. Two copies of the same command (one thread each on a 2-core machine) share
the work: a sweep locks a run folder while it trains it (`flock` on RUN/.sweep.lock, which the kernel releases
when the process ends, however it ends), skips runs another sweep holds, holds back a run whose --init is not
finished, and waits at the end until every run of its plan is finished.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from .train import TrainConfig, run

LOCK = ".sweep.lock"


@dataclass(frozen=True)
class Job:
    """One run of a sweep: its folder and its TrainConfig fields over the sweep's base (`extra` is merged)."""

    out: Path
    changes: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def init(self) -> Path | None:
        return Path(self.changes["init"]) if self.changes.get("init") else None


def finished(out: Path) -> bool:
    return (out / "metrics.json").exists()


@contextmanager
def _locked(out: Path) -> Iterator[bool]:
    """Try to hold RUN/.sweep.lock: yields True when this process holds it, False when another process does."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True  # NOTE: closing the descriptor (below, or the process ending) releases the lock
    finally:
        os.close(fd)


def _train(base: TrainConfig, job: Job, log: Callable[[str], None]) -> dict:
    changes = dict(job.changes)
    cfg = replace(base, out=str(job.out), extra={**base.extra, **changes.pop("extra", {})}, **changes)
    t0 = time.time()
    result = run(cfg, log=lambda *_: None)
    log(f"{job.out}: {time.time() - t0:.0f}s")
    return result


def train_jobs(base: TrainConfig, jobs: Sequence[Job], log: Callable[[str], None] = print,
               poll_s: float = 10.0) -> None:
    """Train every unfinished job, in order, skipping those another sweep is training and those whose --init
    run is not finished yet (after each run the plan is walked from its start again, so a prompt-tuning run
    starts as soon as its pre-trained run ends); returns when all are finished, by this sweep or another."""
    pending = list(dict.fromkeys(j for j in jobs if not finished(j.out)))  # in order, one job a folder
    outs = {j.out for j in pending}
    for j in pending:  # NOTE: said before hours of other runs, not when the run's turn comes
        if j.init is not None and not finished(j.init) and j.init not in outs:
            raise ValueError(f"{j.out} starts from {j.init}, which is not finished and not in this sweep")
        if j.init is not None and finished(j.init) and not (j.init / "best.safetensors").exists():
            raise ValueError(f"{j.out} starts from {j.init}, which has its metrics but not its weights (a committed "
                             "run folder keeps config and metrics only): remove that folder to train it again, or "
                             "sweep into a new --runs folder")
    told = False  # that this sweep waits for another's runs
    while pending:
        trained = False
        for job in pending:
            if finished(job.out) or (job.init is not None and not finished(job.init)):
                continue
            with _locked(job.out) as mine:
                if mine and not finished(job.out):  # NOTE: checked again under the lock: another may just have ended
                    _train(base, job, log)
                    trained = True
            if trained:
                break
        pending = [j for j in pending if not finished(j.out)]
        if pending and not trained:
            if not told:
                told = True
                log(f"waiting for {len(pending)} run(s) another sweep is training or that start from one: "
                    + ", ".join(j.out.name for j in pending[:4]) + (" ..." if len(pending) > 4 else ""))
            time.sleep(poll_s)
        else:
            told = False  # (said again the next time it waits)
