"""model/horizons.py: the four views of a hand-made sequence, and the table from trained run folders."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from model.data import leave_one_out
from model.horizons import VIEWS, contrast_bootstrap, horizons_table, views
from model.train import TrainConfig, run
from service.cli import main


def _split(seqs: list[list[int]]):
    return leave_one_out(SimpleNamespace(sequences=[np.array(s) for s in seqs]))  # it reads the sequences only


def test_views_of_a_hand_made_sequence():
    v = views(_split([[1, 2, 3, 4, 5], [6, 7, 8, 9]]))
    assert list(v) == list(VIEWS)
    want = {"valid": ([[1, 2, 3], [6, 7]], [4, 8]), "valid, 2 ahead": ([[1, 2], [6]], [4, 8]),
            "test, 2 ahead": ([[1, 2, 3], [6, 7]], [5, 9]), "test": ([[1, 2, 3, 4], [6, 7, 8]], [5, 9])}
    for view, (inputs, targets) in want.items():
        assert [h.tolist() for h in v[view][0]] == inputs and v[view][1].tolist() == targets, view
    with pytest.raises(ValueError, match="1 users have fewer than 4"):
        views(_split([[1, 2, 3], [4, 5, 6, 7]]))


def test_target_contrast_on_hand_made_ranks():
    base, better = np.ones(300), np.zeros(300)  # every target at rank 1, then at rank 0: NDCG@10 1 / log2(3) -> 1
    c = contrast_bootstrap(base, better, base, base.copy(), n_boot=200)
    assert c["diff"] == pytest.approx(np.log2(3) - 1) and c["ci95"] == pytest.approx([np.log2(3) - 1] * 2)
    assert c["p_le_0"] == 0.0
    # the same gain on both views: no difference; the gain on view y only: its negative
    assert contrast_bootstrap(base, better, base, better, n_boot=50)["diff"] == pytest.approx(0.0)
    assert contrast_bootstrap(base, base, base, better, n_boot=50)["diff"] == pytest.approx(1 - np.log2(3))
    with pytest.raises(ValueError, match="same users"):
        contrast_bootstrap(base, better, base[:5], better[:5])
    with pytest.raises(ValueError, match="hits no target"):  # a base with every target past 10: no ratio
        contrast_bootstrap(base, better, np.full(300, 20.0), better)


def test_table_from_run_folders_reproduces_their_metrics(tmp_path):
    fast = dict(data="synthetic", epochs=2, patience=2, dropout=0.2, lr=3e-3, batch_size=64, d_model=32)
    sas, tuned = tmp_path / "sas", tmp_path / "tuned"
    run(TrainConfig(model="sasrec", loss="ce", out=str(sas), stages="pretrain", **fast), log=lambda *_: None)
    run(TrainConfig(model="recgpt", stages="prompt", init=str(sas), out=str(tuned), **fast), log=lambda *_: None)
    _, rec = horizons_table({"sas": str(sas), "tuned": str(tuned)}, "sas", [("tuned", "sas"), ("sas", "sas")],
                            n_boot=100)
    for name, d in (("sas", sas), ("tuned", tuned)):
        m = json.loads((d / "metrics.json").read_text())
        one = rec["ndcg@10"][name]["one-stage"]
        assert (one["valid"], one["test"]) == pytest.approx((m["valid"]["NDCG@10"], m["test"]["NDCG@10"]), abs=1e-9)
    m = json.loads((tuned / "metrics.json").read_text())  # its own split and append at K = 10
    assert rec["ndcg@10"]["tuned"]["two-stage"]["test"] == pytest.approx(m["test_two_stage"]["NDCG@10"], abs=1e-9)
    two = {v: rec["ndcg@10"][n]["two-stage"][v] for n in ("tuned", "sas") for v in VIEWS}
    same = rec["pairs"]["sas vs sas"]
    assert same["test"]["rel"] == 0.0 and same["target contrast"]["diff"] == 0.0
    rel = rec["pairs"]["tuned vs sas"]
    assert rel["target contrast"]["diff"] == pytest.approx(rel["valid, 2 ahead"]["rel"] - rel["test, 2 ahead"]["rel"])
    for v in VIEWS:
        want = rec["ndcg@10"]["tuned"]["two-stage"][v] / rec["ndcg@10"]["sas"]["two-stage"][v] - 1
        assert rec["pairs"]["tuned vs sas"][v]["rel"] == pytest.approx(want), two
    # a model that learns the synthetic order: two steps ahead is harder than one
    one = rec["ndcg@10"]["sas"]["one-stage"]
    assert one["valid, 2 ahead"] < one["valid"] and one["test, 2 ahead"] < one["test"]

    out = tmp_path / "docs"
    assert main(["experiments", "horizons", "--model", f"sas={sas}", "--model", f"tuned={tuned}",
                 "--compare", "tuned:sas", "--out", str(out), "--threads", "1"]) == 0
    text = (out / "horizons_synthetic.md").read_text()
    assert "| tuned vs sas |" in text and text.count("| sas |") == 2
    assert json.loads((out / "horizons_synthetic.json").read_text())["reference"] == "sas"
    assert main(["experiments", "horizons", "--model", f"sas={sas}", "--compare", "tuned:sas", "--out", str(out)]) == 2
