"""What a run ran on, written into its metrics.json as the block "env".

NOTE: re-runs of one command on this project's 2-core machines have mostly repeated each other's training curves to
the printed digit (test figures at most ~2e-7 apart, e.g. between one and two threads), but session 46's Sports
SASRec (seed 4) differed from sessions 41 and 51's in the fifth decimal of its first epoch's loss and stopped at
54 epochs instead of 29 (docs/results/history.md, sessions 46 and 51): same code, same command, one thread, and
what the machine was is not on record. Floating-point sums differ between CPU kernels (AVX2 against AVX512),
thread counts and torch builds, so a run records them.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def code_version(repo: Path = REPO) -> str | None:
    """The commit of the code that ran, 12 hex digits, "-dirty" with uncommitted changes to tracked files (no tag
    names: --exclude=*); None outside a git checkout (an installed wheel, the Docker image) or without git."""
    try:
        done = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty", "--abbrev=12",
                               "--exclude=*"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def run_environment(device: torch.device) -> dict:
    """The machine, libraries and code of this process; a resumed run records the part that finished it."""
    return {
        "code": code_version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the kernels torch picked: AVX2, AVX512...
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
    }
