"""model/significance.py: the paired bootstrap, exact on hand-made ranks, and the table from trained run folders."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model.significance import paired_bootstrap, significance_table
from model.train import TrainConfig, run
from service.cli import main


def test_bootstrap_of_an_equal_change_for_every_user_is_that_change():
    base, better = np.ones(500), np.zeros(500)  # every target at rank 1, then at rank 0
    r = paired_bootstrap(base, better, k=10, n_boot=300)
    # NDCG@10 1 / log2(3) -> 1: the change is log2(3) - 1 in every resample
    assert r["rel"] == pytest.approx(np.log2(3) - 1) and r["ci95"] == pytest.approx([np.log2(3) - 1] * 2)
    assert (r["p_le_0"], r["p_ge_target"], r["users"]) == (0.0, 1.0, 500)
    same = paired_bootstrap(base, base.copy(), n_boot=50)
    assert (same["rel"], same["ci95"], same["p_le_0"], same["p_ge_target"]) == (0.0, [0.0, 0.0], 1.0, 0.0)
    # a miss (inf) and a rank past k count 0
    assert paired_bootstrap(np.zeros(4), np.array([0, np.inf, 10, 0]), n_boot=10)["rel"] == pytest.approx(-0.5)


def test_bootstrap_interval_holds_the_change_and_narrows_with_more_users():
    rng = np.random.default_rng(1)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        base = rng.integers(0, 40, n).astype(float)
        return base, np.where(rng.random(n) < 0.1, np.maximum(base - 3, 0), base)  # 10% of users move up

    small = paired_bootstrap(*draw(2000), n_boot=400, seed=3)
    large = paired_bootstrap(*draw(32000), n_boot=400, seed=3)
    for r in (small, large):
        assert r["ci95"][0] < r["rel"] < r["ci95"][1] and r["rel"] > 0
    width = [r["ci95"][1] - r["ci95"][0] for r in (small, large)]
    assert 2.5 < width[0] / width[1] < 6  # 16x the users: about a quarter of the width
    a, b = draw(3000)
    assert paired_bootstrap(a, b, n_boot=100, seed=7) == paired_bootstrap(a, b, n_boot=100, seed=7)


def test_bootstrap_errors():
    with pytest.raises(ValueError, match="same users"):
        paired_bootstrap(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="hits no target"):
        paired_bootstrap(np.full(3, np.inf), np.zeros(3))


def test_table_from_run_folders_reproduces_their_metrics(tmp_path):
    fast = dict(data="synthetic", epochs=3, patience=3, dropout=0.2, lr=3e-3, batch_size=64, d_model=32)
    pop, sas = tmp_path / "pop", tmp_path / "sas"
    run(TrainConfig(model="pop", out=str(pop), **fast), log=lambda *_: None)
    run(TrainConfig(model="sasrec", loss="ce", out=str(sas), stages="pretrain", **fast), log=lambda *_: None)
    table, rows = significance_table([str(sas), f"{sas}:test_two_stage"], str(pop), n_boot=200)
    m = json.loads((sas / "metrics.json").read_text())
    assert [r["run_ndcg"] for r in rows] == pytest.approx([m["test"]["NDCG@10"], m["test_two_stage"]["NDCG@10"]])
    assert all(r["ci95"][0] > 0.5 for r in rows)  # SASRec learns the synthetic order; popularity does not
    assert table.count("| sas |") == 2 and "paired resamples" in table
    # the same from the command line, with --out, on one torch thread (restored after)
    threads = torch.get_num_threads()
    try:
        assert main(["eval", str(sas), "--baseline", str(pop), "--bootstrap", "--threads", "1",
                     "--out", str(tmp_path / "b")]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert main(["eval", str(sas), "--threads", "1"]) == 2  # threads only for --bootstrap: one clear line
    assert json.loads((tmp_path / "b.json").read_text())[0]["run_ndcg"] == pytest.approx(m["test"]["NDCG@10"])
    assert main(["eval", str(sas), "--bootstrap"]) == 2  # no baseline: one clear line
    # NOTE: weights that do not give the run's own figures are refused, not reported
    m["test"]["NDCG@10"] += 0.01
    (sas / "metrics.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="its weights give"):
        significance_table([str(sas)], str(pop), n_boot=10)
    other = Path(tmp_path / "other")
    other.mkdir()
    (other / "metrics.json").write_text(json.dumps({"data": "beauty", "test": m["test"]}))
    with pytest.raises(ValueError, match="one data set"):
        significance_table([str(other)], str(pop), n_boot=10)
