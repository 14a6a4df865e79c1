"""The "env" block of a run's metrics.json: the code, libraries and machine that trained it."""

import re
import subprocess

import torch

from model.runenv import REPO, code_version, cpu_name
from model.train import TrainConfig, run


def test_a_run_records_what_trained_it(tmp_path):
    cfg = TrainConfig(data="synthetic", model="sasrec", loss="ce", epochs=1, patience=1, d_model=16,
                      batch_size=64, threads=1, device="cpu", out=str(tmp_path), extra={"pretrain_soup": 0})
    env = run(cfg, log=lambda *_: None)["env"]
    assert env["torch"] == torch.__version__ and env["device"] == "cpu" and env["gpu"] is None
    assert env["torch_threads"] == 1 and env["deterministic"] is True  # as the run trained, not as it left
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and env["cpu"] == cpu_name() != ""
    assert env["code"] == code_version()


def test_the_code_version_is_the_checkouts_commit_and_none_outside_git(tmp_path):
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    version = code_version()
    if head.returncode == 0:  # a git checkout (CI, a fresh clone): its commit, "-dirty" with local changes
        assert re.fullmatch(r"[0-9a-f]{12}(-dirty)?", version) and head.stdout.startswith(version[:12])
    else:  # an installed copy without .git
        assert version is None
    assert code_version(tmp_path) is None

