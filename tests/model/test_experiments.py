"""The generated main table: every row is read from a run's metrics.json; prompt-tuning starts from the
pre-trained-only row's run."""

import json
import re

from model.experiments import MAIN_ROWS, main_table
from model.train import TrainConfig


def test_main_table_reads_its_runs_and_prompt_tunes_the_pretrained_run(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "results"
    # the paper's model (with the user module), as the committed main table's runs were trained
    base = TrainConfig(epochs=1, patience=1, dropout=0.2, lr=3e-3, batch_size=64, d_model=16, d_ff=32,
                       extra={"user_module": True})
    text = main_table(["synthetic"], [1], runs, out, base, log=lambda *_: None)
    assert (out / "main.md").read_text() == text
    for label in MAIN_ROWS:
        assert f"| {label} |" in text

    pre = runs / "synthetic-recgpt-ce-pretrain-s1"
    tuned = json.loads((runs / "synthetic-recgpt-ce-pretrain+prompt-s1" / "config.json").read_text())
    assert tuned["stages"] == "prompt" and tuned["init"] == str(pre)

    # the table's figures are exactly the runs' figures (4 decimals), one-stage and two-stage blocks
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    m = json.loads((runs / "synthetic-recgpt-ce-pretrain+prompt-s1" / "metrics.json").read_text())
    assert f"| {m['test']['HR@5']:.4f} |" in rows["recgpt + prompt-tuning"]
    assert rows["recgpt + prompt-tuning + two-stage recall"].endswith(f"| {m['test_two_stage']['NDCG@50']:.4f} |")
    pop = json.loads((runs / "synthetic-pop-None-pretrain-s1" / "metrics.json").read_text())
    assert rows["pop"].endswith(f"| {pop['test']['NDCG@50']:.4f} |")

    # prompt-tuning's control: the same fine-tuning of the same run, without prompt items
    control = json.loads((runs / "synthetic-recgpt-ce-pretrain+prompt0-s1" / "config.json").read_text())
    assert control["init"] == str(pre) and control["extra"]["prompt_length"] == 0
    assert "Against the equal-budget control" in text and "Full RecGPT vs our SASRec" in text
    # the inference user vector, chosen on validation; test figures of both kept for the record
    user = m["infer_user"]
    line = next(x for x in text.splitlines() if x.startswith("| the run of 'recgpt + prompt-tuning' |"))
    assert line.endswith(f"| {user['test_NDCG@10_not_for_selection']['unknown']:.4f} | {user['chosen']} |")

    walls = {x.split(" | ")[1]: x for x in text.splitlines() if x.startswith("| synthetic | ")}
    assert walls["recgpt + prompt-tuning"].endswith(" | on |") and walls["pop"].endswith(" | - |")

    # --report-only tabulates what is there: seed 2 was never trained, so the table is seed 1's, flagged n=1
    names = {p.name for p in runs.iterdir()}
    again = main_table(["synthetic"], [1, 2], runs, out, base, log=lambda *_: None, train=False)
    assert {p.name for p in runs.iterdir()} == names
    assert f"| {m['test']['HR@5']:.4f} (n=1) |" in again


def test_ablations_reuse_the_main_runs_and_write_tables_and_plots(tmp_path):
    from model.ablations import ablations

    runs, out = tmp_path / "runs", tmp_path / "results"
    # one epoch under a time cap it never reaches: the runs stop by their epoch limit, so they count as capped, and
    # their figures do not depend on the machine
    base = TrainConfig(epochs=1, patience=1, dropout=0.2, lr=3e-3, batch_size=64, d_model=16, d_ff=32,
                       max_minutes=60)
    main_table(["synthetic"], [1], runs, out, base, log=lambda *_: None)
    before = {p.name for p in runs.iterdir()}
    text = ablations("synthetic", runs, out, base, log=lambda *_: None)
    new = {p.name for p in runs.iterdir()} - before
    assert "synthetic-ablation-prompt-len1" not in new  # the main table's k=1 run is reused
    # the default recgpt has no user module, so the user module's side is a recgpt run with it, prompt-tuned too
    assert {"synthetic-ablation-prompt-len5", "synthetic-ablation-prompt-placement-replace",
            "synthetic-ablation-recgpt-user", "synthetic-ablation-recgpt-prompt"} <= new
    user_prompt = json.loads((runs / "synthetic-ablation-recgpt-prompt" / "model.json").read_text())
    assert user_prompt["config"]["user_module"] is True
    for heading in ("Prompt length", "N/M split at K=10", "N/M split at K=50", "placement-replace",
                    "recgpt, CE pre-training + prompt-tuning (user module off)",
                    "recgpt, CE + prompt-tuning (user module on)", "The paper's claims, answered"):
        assert heading in text
    # capped runs: the claims say that the margin over SASRec is not an equal-budget one
    note = next(x for x in text.splitlines() if x.startswith("NOTE: capped runs ("))
    assert re.match(r"NOTE: capped runs \(pre-trained: epoch limit, prompt-tuned \(k=1\): epoch limit, "
                    r"sasrec \((bce|ce)\): epoch limit\)", note), note
    assert next(x for x in text.splitlines() if x.startswith("| prompt-tuning + two-stage recall")).endswith(
        " (capped) |")
    assert {p.name for p in out.glob("*.png")} >= {"synthetic_prompt_length.png", "synthetic_split_K10.png",
                                                   "synthetic_interaction_K10.png"}
    # prompt length x split: the k=1 run appending 1 item is the split table's "prompt-tuned (k=1), append 1" row
    lines = text.splitlines()
    split_row = next(x for x in lines if x.startswith("| prompt-tuned (k=1) | 1 | "))
    k1_row = next(x for x in lines[lines.index("### K=10 (test NDCG@10; N=K is one-stage recall)"):]
                  if x.startswith("| prompt-tuned (k=1) | 1 | "))
    assert k1_row.rsplit(" | ", 1)[0] == split_row.rstrip(" |")
    # the split table (one recall for the grid) agrees with the run's own two-stage test figure (9+1, append 1)
    tuned = json.loads((runs / "synthetic-recgpt-ce-pretrain+prompt-s1" / "metrics.json").read_text())
    assert tuned["test_two_stage"]["splits"]["10"] == [9, 1]
    assert split_row.split(" | ")[2 + 9 - 5] == f"{tuned['test_two_stage']['NDCG@10']:.4f}"
    # each row says how many epochs its run got (under a time cap, runs of one table can differ)
    assert next(x for x in lines if x.startswith("| 1 | ")).startswith(f"| 1 | {tuned['epochs']} | ")
    assert "| option | epochs |" in text and "| run | epochs |" in text
    k5_row = next(x for x in lines if x.startswith("| prompt-tuned (k=5) | 5 | "))
    assert len(k5_row.split(" | ")) == 2 + 6 + 1  # name, k, six N values, best N


def test_splits_report_adds_the_interaction_table_for_two_prompt_tuned_runs(tmp_path):
    from dataclasses import replace

    from model.experiments import splits_report
    from model.train import run

    base = TrainConfig(epochs=1, patience=1, dropout=0.2, lr=3e-3, batch_size=64, d_model=16, d_ff=32)
    pre = tmp_path / "pre"
    run(replace(base, model="recgpt", stages="pretrain", out=str(pre)), log=lambda *_: None)
    for k in (1, 2):
        run(replace(base, model="recgpt", stages="prompt", init=str(pre), out=str(tmp_path / f"k{k}"),
                    extra={"prompt_length": k}), log=lambda *_: None)
    named = {"pre": str(pre), "k1": str(tmp_path / "k1"), "k2": str(tmp_path / "k2")}
    text = splits_report("synthetic", named, tmp_path / "out")
    assert "Prompt length x N/M split" in text
    rows = [x for x in text.splitlines() if x.count(" | ") == 8 and not x.startswith("| model")]  # name, k, 6 N, best
    assert {x.split(" | ")[0] for x in rows} == {"| k1", "| k2"}  # the pre-trained run has no prompt length
    assert (tmp_path / "out" / "synthetic_interaction_K50.png").exists()
    claims = text.split("## The paper's split claims, answered (generated)")[1]
    assert claims.count("| N = 8 or 9 of K = 10 is best | k") == 2  # one row a prompt-tuned run
    assert claims.count("| two-stage recall without prompt-tuning hurts | pre, ") == 3  # K = 10, 20, 50


def test_split_claims_answer_from_hand_made_curves():
    from model.experiments import split_claims

    # K=10: the prompt-tuned model peaks at N=8; the pre-trained one is best one-stage (N=10)
    tuned10 = {5: 0.050, 6: 0.051, 7: 0.052, 8: 0.060, 9: 0.055, 10: 0.054}
    pre10 = {5: 0.040, 6: 0.041, 7: 0.042, 8: 0.043, 9: 0.044, 10: 0.050}
    results = {(10, "tuned", 1): tuned10, (10, "pre", 1): pre10,
               (20, "tuned", 1): {10: 0.07, 14: 0.07, 16: 0.07, 18: 0.07, 19: 0.07, 20: 0.08},
               (10, "tuned", "all"): {n: 1.0 for n in tuned10}}  # other append options are not read
    rows = split_claims(results, ["tuned"], ["pre"])
    assert rows == [
        "| N = 8 or 9 of K = 10 is best | tuned, append 1: best N=8 (NDCG@10 0.0600; one-stage 0.0540, +11.1%) "
        "| agree |",
        "| (open) the best split at K = 20 | tuned, append 1: best N=20 (NDCG@20 0.0800; one-stage 0.0800, +0.0%) "
        "| one-stage is best |",
        "| two-stage recall without prompt-tuning hurts | pre, K=10 append 1: N=9 0.0440 vs one-stage 0.0500 "
        "(-12.0%); best N=9 (-12.0%) | agree |",
    ]
    # a pre-trained model that gains at N=9 disagrees; a tuned one best at N=6 disagrees with "8 or 9"
    rows = split_claims({(10, "pre", 1): {**pre10, 9: 0.051}, (10, "tuned", 1): {**tuned10, 6: 0.07}},
                        ["tuned"], ["pre"])
    assert rows[0].endswith("best N=6 (NDCG@10 0.0700; one-stage 0.0540, +29.6%) | disagree |")
    assert rows[1].endswith("| disagree |")
