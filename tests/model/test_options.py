"""model/options.py: an option is read off each run's config, every figure off its metrics, exactly; a run that
did not stop by patience is marked, and a run of the wrong data set is an error."""

import json
from pathlib import Path

import pytest

from model.options import (
    CONTROL_LABEL,
    DEFAULT_LABEL,
    _best_on_valid,
    option_label,
    option_rows,
    options_report,
    valid_vs_test,
)
from service.cli import main
from tests.model.test_targets import _run


def test_the_label_is_what_differs_from_the_defaults():
    assert option_label({}) == DEFAULT_LABEL
    assert option_label({"user_module": False, "prompt_length": 1, "prompt_lr": 5e-4}) == DEFAULT_LABEL
    assert option_label({"prompt_length": 0, "user_module": False}) == CONTROL_LABEL
    assert option_label({"prompt_length": 3, "prompt_generation": "topk"}) == "prompt_generation=topk, prompt_length=3"
    assert option_label({"user_module": True, "prompt_weight": 3}) == "prompt_weight=3, user_module=True"


def _groups(root: Path) -> Path:
    def tuned(name: str, two_stage: float, valid: float, seed: int = 1, **kw) -> str:
        return _run(root, name, ndcg=0.05, hr=0.1, two_stage=two_stage, valid=valid, seed=seed, stage="prompt",
                    earlier=30, **kw)

    groups = [
        {"data": "toys", "sasrec": _run(root, "sas1", ndcg=0.0600, hr=0.1, valid=0.0700),
         "runs": [tuned("k1", 0.0618, 0.0714, extra={"user_module": False}),
                  tuned("k3", 0.0630, 0.0721, extra={"prompt_length": 3}),
                  tuned("ctl", 0.0597, 0.0693, extra={"prompt_length": 0}, epochs=12, best=9, max_minutes=5)]},
        {"data": "toys", "sasrec": _run(root, "sas2", ndcg=0.0500, hr=0.1, valid=0.0600, seed=2),
         "runs": [tuned("k1s2", 0.0510, 0.0606, seed=2)]},
    ]
    path = root / "option_runs.json"
    path.write_text(json.dumps({"groups": groups}))
    return path


def test_rows_are_exact_against_each_runs_own_sasrec(tmp_path):
    rows = {r["run"]: r for r in option_rows(_groups(tmp_path))}
    assert rows["k1"]["option"] == DEFAULT_LABEL and rows["k3"]["option"] == "prompt_length=3"
    assert rows["k1"]["gain NDCG@10"] == pytest.approx(0.03) and rows["k1"]["gain HR@10"] == pytest.approx(0.1)
    assert rows["k1"]["valid gain"] == pytest.approx(0.02) and rows["k3"]["valid gain"] == pytest.approx(0.03)
    assert rows["k1s2"]["sasrec"] == "sas2" and rows["k1s2"]["gain NDCG@10"] == pytest.approx(0.02)
    assert rows["ctl"]["stopped"] == "time cap" and rows["k3"]["stopped"] == "patience"


def test_report_pivots_marks_capped_runs_and_names_the_best_on_validation(tmp_path):
    manifest = _groups(tmp_path)
    text = options_report(manifest, tmp_path / "out" / "options")
    lines = text.splitlines()
    first = lines.index(next(x for x in lines if x.startswith("| option |")))
    assert lines[first + 2] == f"| {DEFAULT_LABEL} | +3.0% / +2.0% |"  # the default first, both seeds
    assert lines[first + 3] == f"| {CONTROL_LABEL} | -0.5%* |"  # then the control, capped
    assert lines[first + 4] == "| prompt_length=3 | +5.0% |"
    assert f"| {DEFAULT_LABEL} | +2.0% / +1.0% |" in lines  # the validation table
    assert ("- toys: prompt_length=3: +3.0%, the default +2.0% on the same seeds (1; options compared on the "
            "default's seeds: 2)") in lines
    saved = json.loads((tmp_path / "out" / "options.json").read_text())
    assert saved["datasets"] == ["toys"] and len(saved["runs"]) == 4
    assert (tmp_path / "out" / "options.png").stat().st_size > 0
    assert main(["experiments", "options", "--pairs", str(manifest), "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "options.md").read_text() == text


def test_a_run_of_another_data_set_or_without_two_stage_is_an_error(tmp_path):
    manifest = _groups(tmp_path)
    spec = json.loads(manifest.read_text())
    spec["groups"][0]["runs"].append(_run(tmp_path, "beauty-run", ndcg=0.05, two_stage=0.05, data="beauty"))
    manifest.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="data 'beauty'"):
        option_rows(manifest)
    spec["groups"][0]["runs"][-1] = _run(tmp_path, "one-stage", ndcg=0.05)
    manifest.write_text(json.dumps(spec))
    with pytest.raises(KeyError, match="test_two_stage"):
        option_rows(manifest)
    with pytest.raises(ValueError, match="over the manifest"):
        options_report(manifest, tmp_path / "option_runs")


def test_the_best_on_validation_is_paired_with_the_default_by_seed():
    def row(option: str, seed: int, gain: float) -> dict:
        return {"option": option, "seed": seed, "valid gain": gain, "stopped": "patience"}

    # seed 2's start is stronger: an option run only there is not compared with seed 1's default
    rows = [row(DEFAULT_LABEL, 1, 0.020), row(DEFAULT_LABEL, 1, 0.010), row("a=1", 1, 0.012), row("b=1", 2, 0.05)]
    assert _best_on_valid(rows) == ("the default: no option above it on the same seeds (options compared on the "
                                    "default's seeds: 1)")
    rows.append(row(DEFAULT_LABEL, 2, 0.040))
    assert _best_on_valid(rows) == ("b=1: +5.0%, the default +4.0% on the same seeds (2; options compared on the "
                                    "default's seeds: 2)")


def test_validation_against_test_option_by_option(tmp_path):
    """Each option against the default on the default's seeds, on validation and on test, exactly; a capped run is
    starred and counted."""
    rows = option_rows(_groups(tmp_path))
    by = {p["option"]: p for p in valid_vs_test(rows)}
    assert set(by) == {"prompt_length=3", CONTROL_LABEL}  # the default is the reference, not a row
    k3, ctl = by["prompt_length=3"], by[CONTROL_LABEL]
    assert k3["seeds"] == [1] and k3["valid mean"] == pytest.approx(0.01) and k3["test mean"] == pytest.approx(0.02)
    assert ctl["valid"] == pytest.approx([-0.03]) and ctl["test"] == pytest.approx([-0.035]) and not ctl["converged"]
    (tmp_path / "again").mkdir()
    text = options_report(_groups(tmp_path / "again"), tmp_path / "out" / "options")
    assert "| toys | prompt_length=3 | 1 | +1.0 | +2.0 | 1: +2.0 |" in text
    assert f"| toys | {CONTROL_LABEL} | 1 | -3.0* | -3.5* | 1: -3.5 |" in text
    assert ("Validation and test agree on the side of the default for 2 of 2 options; of the 1 options above the "
            "default on validation, 1 are above it on test too.") in text
    # the default's two runs: validation +2.0% and +1.0%, test +3.0% and +2.0%
    assert "- toys: 2 runs, validation +1.5% ± 0.7, test +2.5% ± 0.7" in text
