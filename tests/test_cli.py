"""The `recgpt` command: help for every subcommand, clear errors, eval tables from run folders."""

import json
import subprocess
import sys

import pytest

from model.train import TrainConfig, run
from service.cli import main

SUBCOMMANDS = ("data", "train", "eval", "export", "build-index", "serve", "bench", "shadow-report", "demo",
               "experiments")


def test_help_names_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "service.cli", "--help"], capture_output=True, text=True, check=True)
    for cmd in SUBCOMMANDS:
        assert cmd in out.stdout


def test_user_errors_are_one_line_and_exit_2(capsys):
    assert main(["train", "--data", "no-such-data", "--out", "/tmp/never"]) == 2
    err = capsys.readouterr().err
    assert "neither a data set name" in err and "Traceback" not in err


def test_splits_names_its_runs_up_to_the_last_equals_sign(capsys, tmp_path):
    assert main(["experiments", "splits", "--datasets", "synthetic", "--model", "no-run-dir"]) == 2
    assert "NAME=RUN_DIR" in capsys.readouterr().err
    # "k=1" stays in the name: the run folder is what follows the last "=" (here one that does not exist)
    assert main(["experiments", "splits", "--datasets", "synthetic", "--model", f"tuned (k=1)={tmp_path}/nope"]) == 2
    assert f"{tmp_path}/nope" in capsys.readouterr().err


def test_eval_writes_markdown_and_json(tmp_path):
    for model in ("pop", "sasrec"):
        run(TrainConfig(model=model, data="synthetic", epochs=2, d_model=16, loss="ce" if model != "pop" else None,
                        out=str(tmp_path / model)), log=lambda *_: None)
    assert main(["eval", str(tmp_path / "pop"), str(tmp_path / "sasrec"), "--out", str(tmp_path / "cmp")]) == 0
    rows = json.loads((tmp_path / "cmp.json").read_text())
    assert [r["model"] for r in rows] == ["pop", "sasrec"]
    table = (tmp_path / "cmp.md").read_text()
    assert table.count("\n") == 4 and f"{rows[1]['NDCG@10']:.4f}" in table
    # against a baseline run: each row's relative change, the baseline's own row at exactly 0
    assert main(["eval", str(tmp_path / "pop"), str(tmp_path / "sasrec"), "--baseline", str(tmp_path / "pop"),
                 "--out", str(tmp_path / "rel")]) == 0
    rows = json.loads((tmp_path / "rel.json").read_text())
    assert rows[0]["NDCG@10 vs base"] == 0.0
    assert rows[1]["NDCG@10 vs base"] == pytest.approx(rows[1]["NDCG@10"] / rows[0]["NDCG@10"] - 1)
    assert f"{100 * rows[1]['HR@10 vs base']:+.1f}%" in (tmp_path / "rel.md").read_text()


def test_eval_per_run_blocks_and_a_baseline_per_data_set(tmp_path):
    """RUN:BLOCK picks a row's block; with several baselines each row is compared with its own data set's."""
    runs = {}
    for data, seed in (("synthetic", 1), (str(tmp_path / "other.txt"), 2)):
        if data != "synthetic":  # a second, different data set: a sequence file
            (tmp_path / "other.txt").write_text("".join(f"u{u} " + " ".join(f"i{(u + j) % 30}" for j in range(8)) + "\n"
                                                        for u in range(60)))
        for model in ("pop", "sasrec"):
            out = tmp_path / f"{model}-{seed}"
            run(TrainConfig(model=model, data=data, epochs=1, d_model=16, loss="ce" if model != "pop" else None,
                            seed=seed, out=str(out)), log=lambda *_: None)
            runs[model, seed] = json.loads((out / "metrics.json").read_text()) | {"dir": str(out)}
    specs = [runs["sasrec", 1]["dir"] + ":test_two_stage", runs["sasrec", 2]["dir"], runs["pop", 2]["dir"] + ":valid"]
    assert main(["eval", *specs, "--baseline", runs["pop", 1]["dir"], "--baseline", runs["pop", 2]["dir"],
                 "--out", str(tmp_path / "cmp")]) == 0
    rows = json.loads((tmp_path / "cmp.json").read_text())
    assert [r["block"] for r in rows] == ["test_two_stage", "test", "valid"]
    assert rows[0]["NDCG@10"] == runs["sasrec", 1]["test_two_stage"]["NDCG@10"]
    assert rows[2]["NDCG@10"] == runs["pop", 2]["valid"]["NDCG@10"]
    # each row against the baseline (pop, one-stage test) of its own data set
    assert rows[0]["NDCG@10 vs base"] == pytest.approx(rows[0]["NDCG@10"] / runs["pop", 1]["test"]["NDCG@10"] - 1)
    assert rows[1]["NDCG@10 vs base"] == pytest.approx(rows[1]["NDCG@10"] / runs["pop", 2]["test"]["NDCG@10"] - 1)
    # two baselines of one data set are ambiguous: a clear error, exit 2
    assert main(["eval", specs[1], "--baseline", runs["pop", 2]["dir"], "--baseline", runs["sasrec", 2]["dir"]]) == 2
