"""Two sweeps side by side share their runs: each run is trained once, a prompt-tuning run only after the
run it starts from, and a sweep waits for the runs another sweep holds."""

import json
import threading
import time
from pathlib import Path

import pytest

from model import sweep
from model.sweep import Job, _locked, finished, train_jobs
from model.train import TrainConfig


class Trained(list):
    """(thread, run folder name) of each run the fake training trained, in order. With `hold_pre` set, the run
    named "pre" trains until another run has started beside it (10 s at most)."""

    def __init__(self) -> None:
        super().__init__()
        self.hold_pre = False
        self.other_started = threading.Event()


@pytest.fixture
def fake_run(monkeypatch) -> Trained:
    """sweep.run replaced by a 'training' that takes a moment and records who trained what."""
    trained = Trained()

    def run(cfg: TrainConfig, log=print) -> dict:
        out = Path(cfg.out)
        if cfg.init:
            assert finished(Path(cfg.init)), f"{out.name} started before {Path(cfg.init).name} had finished"
        trained.append((threading.current_thread().name, out.name))
        if out.name == "pre" and trained.hold_pre:
            trained.other_started.wait(timeout=10)
        else:
            trained.other_started.set()
            time.sleep(0.05)
        (out / "best.safetensors").write_bytes(b"")
        metrics = {"test": {"NDCG@10": 0.1}, "extra": cfg.extra}
        (out / "metrics.json").write_text(json.dumps(metrics))
        return metrics

    monkeypatch.setattr(sweep, "run", run)
    return trained


def _plan(runs: Path) -> list[Job]:
    pre = Job(runs / "pre", {"stages": "pretrain"})
    tuned = [Job(runs / f"k{k}", {"stages": "prompt", "init": str(pre.out), "extra": {"prompt_length": k}})
             for k in range(1, 6)]
    return [pre, *tuned, *(Job(runs / f"base{i}", {"model": "sasrec"}) for i in range(4))]


def test_two_sweeps_train_each_run_once_and_share_the_work(tmp_path, fake_run):
    jobs = _plan(tmp_path)
    fake_run.hold_pre = True
    errors: list[BaseException] = []

    def sweep_copy() -> None:
        try:
            train_jobs(TrainConfig(), jobs, log=lambda *_: None, poll_s=0.02)
        except BaseException as e:  # noqa: BLE001 (reported by the test, not lost in the thread)
            errors.append(e)

    sweeps = [threading.Thread(target=sweep_copy, name=f"sweep{i}") for i in range(2)]
    for t in sweeps:
        t.start()
    for t in sweeps:
        t.join(timeout=60)
    assert errors == []
    names = [name for _, name in fake_run]
    assert sorted(names) == sorted(j.out.name for j in jobs)  # every run once, none twice
    assert {who for who, _ in fake_run} == {"sweep0", "sweep1"}  # both worked
    # the config of each run is the base with the job's changes (extra merged)
    assert json.loads((tmp_path / "k3" / "metrics.json").read_text())["extra"]["prompt_length"] == 3
    # while one trained the pre-trained run, the other trained a run that needs nothing, not a prompt run (they
    # start from it: the fake training fails a run whose --init has not finished)
    pre_by = next(who for who, name in fake_run if name == "pre")
    first_other = next((who, name) for who, name in fake_run if name != "pre")
    assert first_other[0] != pre_by and first_other[1].startswith("base")


def test_a_sweep_skips_a_run_another_holds_and_waits_for_it(tmp_path, fake_run):
    jobs = _plan(tmp_path)
    logs: list[str] = []
    with _locked(jobs[-1].out) as mine:  # "another sweep" trains base3
        assert mine
        t = threading.Thread(target=train_jobs, args=(TrainConfig(), jobs),
                             kwargs={"log": logs.append, "poll_s": 0.02})
        t.start()
        deadline = time.time() + 30  # until it says it waits (it trains the rest first)
        while not any(x.startswith("waiting for") for x in logs) and time.time() < deadline:
            time.sleep(0.02)
        assert any(x.startswith("waiting for 1 run(s)") for x in logs)
        assert sorted(name for _, name in fake_run) == sorted(j.out.name for j in jobs[:-1])
        assert t.is_alive()
        (jobs[-1].out / "metrics.json").write_text("{}")  # the other sweep finishes it
    t.join(timeout=30)
    assert not t.is_alive()
    assert "base3" not in [name for _, name in fake_run]


def test_a_lock_left_by_an_ended_holder_is_free(tmp_path, fake_run):
    job = Job(tmp_path / "r", {})
    with _locked(job.out) as mine:
        assert mine
        with _locked(job.out) as other:
            assert not other  # held (flock: a second open file, even in this process, is another holder)
    train_jobs(TrainConfig(), [job], log=lambda *_: None)  # released when the holder closed it
    assert [name for _, name in fake_run] == ["r"]


def test_a_run_that_starts_from_nothing_is_an_error_not_a_wait(tmp_path, fake_run):
    job = Job(tmp_path / "k1", {"stages": "prompt", "init": str(tmp_path / "missing")})
    with pytest.raises(ValueError, match="not finished and not in this sweep"):
        train_jobs(TrainConfig(), [job], log=lambda *_: None)
    assert fake_run == []


def test_a_run_that_starts_from_a_run_without_weights_is_an_error_before_any_training(tmp_path, fake_run):
    pre = tmp_path / "pre"
    pre.mkdir()
    (pre / "metrics.json").write_text("{}")  # a committed run folder: metrics, no best.safetensors
    jobs = [Job(tmp_path / "other", {}), Job(tmp_path / "k1", {"stages": "prompt", "init": str(pre)})]
    with pytest.raises(ValueError, match="not its weights"):
        train_jobs(TrainConfig(), jobs, log=lambda *_: None)
    assert fake_run == []
    (pre / "best.safetensors").write_bytes(b"")
    train_jobs(TrainConfig(), jobs, log=lambda *_: None)
    assert [name for _, name in fake_run] == ["other", "k1"]


@pytest.mark.parametrize("which", ["main", "ablations"])
def test_train_only_trains_every_data_set_s_runs_as_one_plan_and_writes_no_table(tmp_path, fake_run, which):
    from model.ablations import ablation_jobs, ablation_plan
    from model.experiments import main_jobs
    from service.cli import main

    runs, out = tmp_path / "runs", tmp_path / "results"
    assert main(["experiments", which, "--datasets", "synthetic", "--seeds", "1,2", "--train-only",
                 "--runs", str(runs), "--out", str(out)]) == 0
    base = TrainConfig(seed=1)  # ablations: one seed (the first)
    planned = (main_jobs(["synthetic"], [1, 2], runs).values() if which == "main"
               else ablation_jobs(ablation_plan("synthetic", runs, base)))
    assert sorted(name for _, name in fake_run) == sorted({job.out.name for job in planned})
    assert not out.exists()
    assert main(["experiments", "splits", "--train-only", "--datasets", "synthetic", "--model", f"x={runs}"]) == 2
