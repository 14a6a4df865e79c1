"""model/report.py: seed groups' mean ± std and paired relative changes, exact on hand-made metrics.json files."""

import json
from pathlib import Path

import pytest

from model.report import COLUMNS, parse_group, seed_groups
from service.cli import main


def _run(root: Path, name: str, seed: int, ndcg10: float, hr10: float, two_stage: float | None = None,
         data: str = "beauty") -> str:
    block = {c: 0.01 for c in COLUMNS} | {"NDCG@10": ndcg10, "HR@10": hr10}
    m = {"data": data, "seed": seed, "model": "x", "test": block}
    if two_stage is not None:
        m["test_two_stage"] = block | {"NDCG@10": two_stage}
    (root / name).mkdir()
    (root / name / "metrics.json").write_text(json.dumps(m))
    return str(root / name)


def test_groups_mean_std_and_the_pairs_against_the_same_seed(tmp_path):
    base = [_run(tmp_path, f"sas{s}", s, n, 0.1) for s, n in ((1, 0.050), (2, 0.040), (3, 0.060))]
    # one-stage +2%, +5%, +0%; two-stage +4%, +10%, +1%
    gpt = [_run(tmp_path, f"gpt{s}", s, n, 0.1, t) for s, n, t in ((1, 0.051, 0.052), (2, 0.042, 0.044),
                                                                   (3, 0.060, 0.0606))]
    table, rows = seed_groups([("sasrec", base), ("recgpt", gpt), ("recgpt 2-stage", [g + ":test_two_stage"
                                                                                      for g in gpt])],
                              baseline="sasrec")
    sas, one, two = rows
    assert sas["NDCG@10"] == pytest.approx(0.05) and sas["NDCG@10 std"] == pytest.approx(0.01)  # sample std
    assert sas["NDCG@10 vs base"] == [0.0, 0.0, 0.0]
    assert one["NDCG@10 vs base"] == pytest.approx([0.02, 0.05, 0.0])
    assert one["NDCG@10 vs base mean"] == pytest.approx(0.07 / 3)
    assert two["NDCG@10 vs base"] == pytest.approx([0.04, 0.10, 0.01])
    assert two["NDCG@10 vs base std"] == pytest.approx(((0.01 ** 2 + 0.05 ** 2 + 0.04 ** 2) / 2) ** 0.5)
    assert two["seeds"] == [1, 2, 3] and two["n"] == 3
    line = next(x for x in table.splitlines() if x.startswith("| recgpt 2-stage |"))
    assert "+5.0% ± 4.6 (+1.0..+10.0)" in line and "| 2/3 |" in line  # pairs at or above +3%
    assert "0.0522 ± 0.0083" in line  # two-stage NDCG@10: 0.052, 0.044, 0.0606: mean, sample std


def test_groups_that_do_not_pair_or_mix_data_sets_are_clear_errors(tmp_path):
    a = [_run(tmp_path, f"a{s}", s, 0.05, 0.1) for s in (1, 2)]
    b = [_run(tmp_path, f"b{s}", s, 0.05, 0.1) for s in (2, 1)]
    with pytest.raises(ValueError, match="does not pair"):
        seed_groups([("a", a), ("b", b)], baseline="a")
    with pytest.raises(ValueError, match="is not a group"):
        seed_groups([("a", a)], baseline="c")
    other = _run(tmp_path, "y1", 1, 0.05, 0.1, data="yelp")
    with pytest.raises(ValueError, match="mixes data sets"):
        seed_groups([("a", [a[0], other])])
    with pytest.raises(KeyError, match="test_two_stage"):
        seed_groups([("a", [a[0] + ":test_two_stage"])])
    assert parse_group("k=1 tuned=r1,r2:valid") == ("k=1 tuned", ["r1", "r2:valid"])
    with pytest.raises(ValueError, match="LABEL=RUN"):
        parse_group("no-label")


def test_eval_groups_from_the_command_line(tmp_path, capsys):
    a = [_run(tmp_path, f"a{s}", s, 0.05 + s / 1000, 0.1) for s in (1, 2)]
    b = [_run(tmp_path, f"b{s}", s, 0.06, 0.1) for s in (1, 2)]
    assert main(["eval", "--group", "a=" + ",".join(a), "--group", "b=" + ",".join(b), "--paired-baseline", "a",
                 "--out", str(tmp_path / "g")]) == 0
    rows = json.loads((tmp_path / "g.json").read_text())
    assert [r["group"] for r in rows] == ["a", "b"] and rows[1]["NDCG@10 vs base"] == pytest.approx([0.06 / 0.051 - 1,
                                                                                                    0.06 / 0.052 - 1])
    assert "| b | 2 | 1,2 |" in (tmp_path / "g.md").read_text()
    # runs and groups together, or --baseline with groups: one line, exit 2
    assert main(["eval", a[0], "--group", "a=" + a[1]]) == 2
    assert main(["eval", "--group", "a=" + a[1], "--baseline", a[0]]) == 2
    assert "--paired-baseline" in capsys.readouterr().err


def test_selection_column_is_what_each_run_was_chosen_on(tmp_path):
    from model.report import compare_runs, selected_on

    mixed = _run(tmp_path, "mixed", 1, 0.05, 0.1)
    souped = _run(tmp_path, "souped", 1, 0.05, 0.1)
    plain = _run(tmp_path, "plain", 1, 0.05, 0.1)
    pre = _run(tmp_path, "pre", 1, 0.05, 0.1)
    user = _run(tmp_path, "user", 1, 0.05, 0.1)
    served = {"chosen": "unknown", "valid_NDCG@10": {"own": 0.065, "unknown": 0.068}}
    for run, extra in [(user, {"stages": "pretrain,prompt", "soup": {"prompt": {"valid_select": 0.07}},
                               "infer_user": served}),
                       (mixed, {"stages": "pretrain,prompt", "soup": {"prompt": {"valid_select": 0.07}},
                                "mix_start": {"prompt": {"valid_select": 0.071}}}),
                       (souped, {"stages": "prompt", "soup": {"pretrain": {"valid_select": 0.05},
                                                              "prompt": {"valid_select": 0.072}}}),
                       (plain, {"stages": "pretrain,prompt", "soup": {"prompt": {}}}), (pre, {"stages": "pretrain"})]:
        m = json.loads((Path(run) / "metrics.json").read_text()) | extra
        (Path(run) / "metrics.json").write_text(json.dumps(m))
    # plain: the prompt stage's last best epoch, on two-stage validation; pre: one-stage validation
    def row(stage: str, epoch: int, best: bool, one: float, two: float | None = None) -> dict:
        r = {"stage": stage, "epoch": epoch, "best": best, "valid": {"NDCG@10": one}}
        return r | ({"valid_two_stage": {"NDCG@10": two}} if two is not None else {})

    rows = [row("pretrain", 1, True, 0.01), row("prompt", 1, True, 0.02, 0.03), row("prompt", 2, True, 0.04, 0.06),
            row("prompt", 3, False, 0.09, 0.09)]
    (Path(plain) / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (Path(pre) / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\n")
    got = {Path(r).name: selected_on(r, json.loads((Path(r) / "metrics.json").read_text()))
           for r in (mixed, souped, plain, pre, user)}
    # user: souped on own vectors (0.07), serves the unknown-user vector chosen after: the served model's figure
    assert got == {"mixed": 0.071, "souped": 0.072, "plain": 0.06, "pre": 0.01, "user": 0.068}
    table, _ = compare_runs([mixed, pre], selection=True)
    assert table.splitlines()[0].endswith("| valid NDCG@10 selected on | epochs | wall s |")
    assert "| 0.07100 |" in table.splitlines()[2] and "| 0.01000 |" in table.splitlines()[3]
    assert "selected on" not in compare_runs([mixed])[0]


def test_eval_plot_of_test_against_the_validation_chosen_on(tmp_path, capsys):
    from model.plots import plot_selection

    base = _run(tmp_path, "base", 1, 0.05, 0.1)
    runs = [_run(tmp_path, f"r{i}", 1, 0.05 + i / 1000, 0.1) for i in (1, 2)]
    for i, run in enumerate([base, *runs]):
        m = json.loads((Path(run) / "metrics.json").read_text()) | {"soup": {"pretrain": {"valid_select": 0.06 + i}}}
        (Path(run) / "metrics.json").write_text(json.dumps(m))
    out = tmp_path / "t"
    assert main(["eval", *runs, "--baseline", base, "--plot", "--out", str(out)]) == 0
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --plot implies the selection column the points are made of
    assert [r["valid_selected_on"] for r in json.loads((tmp_path / "t.json").read_text())] == [1.06, 2.06]
    # no --out, no baseline, or groups: one clear line, exit 2
    for bad in (["--baseline", base, "--plot"], ["--plot", "--out", str(out)]):
        assert main(["eval", *runs, *bad]) == 2
    assert main(["eval", "--group", "a=" + runs[0], "--plot", "--out", str(out)]) == 2
    assert "--plot" in capsys.readouterr().err
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_selection([{"run": runs[0], "block": "test", "NDCG@10": 0.05, "valid_selected_on": None}], out)
