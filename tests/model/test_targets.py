"""model/targets.py: the targets table from hand-made run folders: our SASRec is the better listed run, the gain is
exact, the verdict counts pairs, a run that did not stop by patience makes the comparison 'capped', and the
headline holds only runs of the code's defaults."""

import json
from pathlib import Path

import pytest

from model.options import option_label
from model.report import COLUMNS, stopped_by
from model.stages import DATA_PROMPT_DEFAULTS
from model.targets import pair_rows, targets_report, verdicts
from service.cli import main


def _run(root: Path, name: str, *, ndcg: float, hr: float = 0.1, two_stage: float | None = None, data: str = "toys",
         loss: str = "ce", seed: int = 1, epochs: int = 15, best: int = 5, patience: int = 10,
         max_minutes: float | None = None, epoch_limit: int = 200, stage: str = "pretrain",
         earlier: int = 0, extra: dict | None = None, valid: float | None = None) -> str:
    """A finished run folder: `earlier` epochs of a pre-training stage in metrics.jsonl before `stage`'s; `extra`
    its config's `--set` options, `valid` the validation NDCG@10 its weights were chosen on (as a soup's)."""
    block = {c: 0.01 for c in COLUMNS} | {"NDCG@10": ndcg, "HR@10": hr}
    m = {"data": data, "seed": seed, "model": "x", "loss": loss, "stages": stage, "epochs": earlier + epochs,
         "best_epoch": {stage: best}, "test": block}
    if valid is not None:
        m["soup"] = {stage: {"valid_select": valid}}
    if two_stage is not None:
        m["test_two_stage"] = block | {"NDCG@10": two_stage, "HR@10": hr * 1.1, "splits": {"10": [9, 1]}}
    d = root / name
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps(m))
    (d / "config.json").write_text(json.dumps({"patience": patience, "max_minutes": max_minutes,
                                               "epochs": epoch_limit, "extra": extra or {}}))
    rows = [{"stage": "pretrain", "epoch": e} for e in range(1, earlier + 1)]
    rows += [{"stage": stage, "epoch": e} for e in range(1, epochs + 1)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return name


def _manifest(root: Path, pairs: list[dict]) -> Path:
    path = root / "target_pairs.json"
    path.write_text(json.dumps({"pairs": pairs}))
    return path


def test_how_a_run_stopped(tmp_path):
    assert stopped_by(tmp_path / _run(tmp_path, "p", ndcg=0.05, epochs=15, best=5)) == "patience"
    assert stopped_by(tmp_path / _run(tmp_path, "c", ndcg=0.05, epochs=14, best=5, max_minutes=2.0)) == "time cap"
    assert stopped_by(tmp_path / _run(tmp_path, "e", ndcg=0.05, epochs=2, best=2, epoch_limit=2)) == "epoch limit"
    # a two-stage run: the prompt stage's own epochs count (12 of them, best 2), not the run's 30
    two = _run(tmp_path, "two", ndcg=0.05, epochs=12, best=2, stage="prompt", earlier=18, max_minutes=30.0)
    assert stopped_by(tmp_path / two) == "patience"
    short = _run(tmp_path, "short", ndcg=0.05, epochs=8, best=3, stage="prompt", earlier=18, max_minutes=30.0)
    assert stopped_by(tmp_path / short) == "time cap"  # 18 + 8 epochs would pass for patience over the whole run
    assert stopped_by(tmp_path / _run(tmp_path, "hand", ndcg=0.05, epochs=6, best=5)) == "unknown"


def test_our_sasrec_is_the_better_loss_and_the_gain_is_exact(tmp_path):
    pairs = []
    for seed, ce, bce, rg in ((1, 0.050, 0.052, 0.0546), (2, 0.040, 0.030, 0.0408)):  # +5% of bce; +2% of ce
        pairs.append({"data": "toys", "setting": "converged", "seed": seed,
                      "sasrec": [_run(tmp_path, f"ce{seed}", ndcg=ce, seed=seed),
                                 _run(tmp_path, f"bce{seed}", ndcg=bce, seed=seed, loss="bce")],
                      "recgpt": _run(tmp_path, f"rg{seed}", ndcg=0.001, two_stage=rg, seed=seed, stage="prompt")})
    rows = pair_rows(_manifest(tmp_path, pairs))
    assert [r["sasrec"] for r in rows] == ["bce1", "ce2"] and [r["sasrec_loss"] for r in rows] == ["bce", "ce"]
    # RecGPT's figure is its two-stage block (its one-stage 0.001 would be a loss)
    assert [r["gain_NDCG@10"] for r in rows] == pytest.approx([0.05, 0.02])
    assert rows[0]["gain_HR@10"] == pytest.approx(0.1)
    (v,) = verdicts(rows)
    assert v["n"] == 2 and v["pairs >= +3%"] == 1 and v["target"] == "not met" and v["converged"]
    assert v["gain mean"] == pytest.approx(0.035) and v["gain min"] == pytest.approx(0.02)
    assert v["recgpt NDCG@10"] == pytest.approx((0.0546 + 0.0408) / 2)


def test_capped_runs_are_never_a_converged_verdict(tmp_path):
    pairs = [{"data": "beauty", "setting": "capped", "seed": 1,
              "sasrec": [_run(tmp_path, "sas", ndcg=0.04, data="beauty", epochs=4, best=4, max_minutes=3.0)],
              "recgpt": _run(tmp_path, "rg", ndcg=0.04, two_stage=0.05, data="beauty", stage="prompt")}]
    (v,) = verdicts(pair_rows(_manifest(tmp_path, pairs)))
    assert v["pairs >= +3%"] == 1 and not v["converged"] and v["target"] == "met on capped runs"


def test_report_files_and_the_cli(tmp_path):
    pairs = [{"data": "beauty", "setting": "converged", "seed": 1,
              "sasrec": [_run(tmp_path, "sas", ndcg=0.0570, hr=0.0950, data="beauty")],
              "recgpt": _run(tmp_path, "rg", ndcg=0.05, hr=0.0900, two_stage=0.0581, data="beauty",
                             stage="prompt", earlier=20)}]
    manifest = _manifest(tmp_path, pairs)
    text = targets_report(manifest, tmp_path / "out" / "targets")
    line = next(x for x in text.splitlines() if x.startswith("| 1 | beauty | converged | 1 |"))
    assert "+1.9%" in line and "| 0/1 | not met |" in line and "0.0611 (not reached)" in line
    assert "patience, 15 ep" in text  # the RecGPT run's prompt stage: 15 of its 35 epochs
    assert "authors' 0.0651 / 0.0356: beaten" in line  # HR@10 0.099 and NDCG@10 0.0581
    saved = json.loads((tmp_path / "out" / "targets.json").read_text())
    assert saved["pairs"][0]["recgpt"] == "rg" and saved["summary"][0]["target"] == "not met"
    assert (tmp_path / "out" / "targets.png").stat().st_size > 0
    assert main(["experiments", "targets", "--pairs", str(manifest), "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "targets.md").read_text() == text


def test_a_pair_of_the_wrong_data_set_or_without_two_stage_is_an_error(tmp_path):
    wrong = [{"data": "toys", "setting": "s", "sasrec": [_run(tmp_path, "sas", ndcg=0.05, data="yelp")],
              "recgpt": _run(tmp_path, "rg", ndcg=0.05, two_stage=0.06)}]
    with pytest.raises(ValueError, match="data 'yelp'"):
        pair_rows(_manifest(tmp_path, wrong))
    one_stage = [{"data": "toys", "setting": "s", "sasrec": [_run(tmp_path, "sas2", ndcg=0.05)],
                  "recgpt": _run(tmp_path, "rg2", ndcg=0.06)}]
    with pytest.raises(KeyError, match="test_two_stage"):
        pair_rows(_manifest(tmp_path, one_stage))
    assert main(["experiments", "targets", "--pairs", str(tmp_path / "target_pairs.json"), "--out", str(tmp_path)]) == 2


def test_the_report_never_writes_over_its_manifest(tmp_path):
    pairs = [{"data": "toys", "setting": "s", "sasrec": [_run(tmp_path, "sas", ndcg=0.05)],
              "recgpt": _run(tmp_path, "rg", ndcg=0.05, two_stage=0.06)}]
    manifest = tmp_path / "targets.json"
    manifest.write_text(json.dumps({"pairs": pairs}))
    assert main(["experiments", "targets", "--pairs", str(manifest), "--out", str(tmp_path)]) == 2
    assert json.loads(manifest.read_text()) == {"pairs": pairs}


def test_the_headline_is_the_code_defaults_and_refuses_other_options(tmp_path):
    """`current` names each data set's setting of the code's defaults: the report's headline, one cell a seed; a
    setting that is not there, or a run trained with other options than DATA_PROMPT_DEFAULTS, is an error."""
    toys = option_label(DATA_PROMPT_DEFAULTS["toys"])
    pairs = []
    for seed, rg in ((1, 0.0520), (2, 0.0510)):  # +4% and +2% over 0.05
        pairs.append({"data": "toys", "setting": "defaults", "seed": seed,
                      "sasrec": [_run(tmp_path, f"sas{seed}", ndcg=0.05, seed=seed)],
                      "recgpt": _run(tmp_path, f"rg{seed}", ndcg=0.05, two_stage=rg, seed=seed, stage="prompt",
                                     extra=dict(DATA_PROMPT_DEFAULTS["toys"], user_module=False))})
    pairs.append({"data": "toys", "setting": "other", "seed": 1, "sasrec": ["sas1"],
                  "recgpt": _run(tmp_path, "rg-k3", ndcg=0.05, two_stage=0.06, stage="prompt",
                                 extra={"prompt_length": 3})})
    manifest = tmp_path / "target_pairs.json"
    manifest.write_text(json.dumps({"current": {"toys": "defaults"}, "pairs": pairs}))
    text = targets_report(manifest, tmp_path / "out" / "targets")
    head = text[text.index("## The code's defaults"):text.index("## Every setting")]
    (line,) = [x for x in head.splitlines() if x.startswith("| toys |")]
    assert line.startswith(f"| toys | {toys} | #1 | 2 | 1: +4.0%, 2: +2.0% | +3.0% ± 1.4 (+2.0%..+4.0%) | 1/2 | ")
    assert line.endswith(" | +10.0% ± 0.0 |")  # HR@10: 0.11 against 0.10 in both pairs
    assert "| 2 | toys | other |" in text  # every setting, numbered as the headline's '#1'
    assert (tmp_path / "out" / "targets_defaults.png").stat().st_size > 0
    assert json.loads((tmp_path / "out" / "targets.json").read_text())["current"][0]["seed gains"] == \
        pytest.approx([0.04, 0.02])
    manifest.write_text(json.dumps({"current": {"toys": "other"}, "pairs": pairs}))
    with pytest.raises(ValueError, match=r"rg-k3 was trained with 'prompt_length=3'"):
        targets_report(manifest, tmp_path / "out" / "targets")
    manifest.write_text(json.dumps({"current": {"toys": "nowhere"}, "pairs": pairs}))
    with pytest.raises(ValueError, match="not a setting of its pairs"):
        targets_report(manifest, tmp_path / "out" / "targets")
    # no headline without `current`, and no defaults plot
    manifest.write_text(json.dumps({"pairs": pairs}))
    assert "## The code's defaults" not in targets_report(manifest, tmp_path / "plain" / "targets")
    assert not (tmp_path / "plain" / "targets_defaults.png").exists()
