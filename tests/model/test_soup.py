"""The greedy soup of a stage's best epochs: which epochs are kept, which join, and what the weights become."""

import json

import pytest
import torch

from bench.mix_start import main as bench_mix_start
from bench.seed_soup import main as bench_seed_soup
from model.checkpoint import load_weights, save_checkpoint
from model.data import leave_one_out, load_dataset
from model.io import load_run_model
from model.recall import evaluate_recall
from model.soup import greedy_mean, greedy_soup, keep_epoch, kept_epochs, mean_state, mix_with_start
from model.stages import MIX_ALPHAS, mix_alphas
from model.train import TrainConfig, run

FAST = dict(data="synthetic", epochs=4, patience=4, dropout=0.2, lr=3e-3, batch_size=64, d_model=32)


def _at(model: torch.nn.Module, value: float) -> torch.nn.Module:
    with torch.no_grad():
        model.weight.fill_(value)
        model.bias.fill_(-value)
    return model


def test_keep_epoch_keeps_the_n_best_and_a_resume_drops_later_files(tmp_path):
    model = torch.nn.Linear(2, 1)
    for epoch, score in enumerate([0.1, 0.5, 0.3, 0.2, 0.4], start=1):
        keep_epoch(tmp_path, "prompt", _at(model, epoch), epoch, score, n=3)
    assert kept_epochs(tmp_path, "prompt") == {2: 0.5, 5: 0.4, 3: 0.3}
    # a resumed stage that repeats epoch 4 forgets what epoch 5 kept before the restart
    keep_epoch(tmp_path, "prompt", _at(model, 4), 4, 0.25, n=3)
    assert kept_epochs(tmp_path, "prompt") == {2: 0.5, 3: 0.3, 4: 0.25}
    keep_epoch(tmp_path, "pretrain", model, 1, 0.9, n=0)  # no soup: nothing is written
    assert kept_epochs(tmp_path, "pretrain") == {}


def test_greedy_soup_adds_an_epoch_only_when_validation_does_not_drop(tmp_path):
    model = torch.nn.Linear(2, 1)
    # weights 2, 4, 8, 3 with scores that rank them 4 > 2 > 8 > 3
    for epoch, (value, score) in enumerate([(2.0, 0.3), (4.0, 0.5), (8.0, 0.2), (3.0, 0.1)], start=1):
        keep_epoch(tmp_path, "prompt", _at(model, value), epoch, score, n=4)

    def validate() -> float:  # best at weight 3: the soup of 4 and 2 (3.0) is better than 4 alone;
        return -abs(float(model.weight[0, 0].detach()) - 3.0)  # adding 8 (mean 4.67) is worse; adding 3 keeps 3.0

    info = greedy_soup(tmp_path, "prompt", model, validate)
    assert info["epochs"] == [2, 1, 4]
    assert info["best_single"] == pytest.approx(-1.0) and info["valid_select"] == pytest.approx(0.0)
    assert info["tried"]["3"] == pytest.approx(-(14 / 3 - 3))
    assert torch.allclose(model.weight, torch.full_like(model.weight, 3.0))
    assert torch.allclose(model.bias, torch.full_like(model.bias, -3.0))
    assert kept_epochs(tmp_path, "prompt") == {}  # the epoch files are removed


def test_greedy_mean_scores_the_plain_mean_of_each_candidate_set_and_keeps_what_does_not_drop():
    states = {name: {"w": torch.full((2,), value), "step": torch.tensor(7)}
              for name, value in [("a", 4.0), ("b", 2.0), ("c", 8.0), ("d", 3.0)]}
    asked = []

    def score(members: list[str], state: dict[str, torch.Tensor]) -> float:
        asked.append(members)
        # the running float64 total gives what averaging the members' weights afresh gives
        assert torch.allclose(state["w"], mean_state([states[m] for m in members])["w"])
        return -abs(float(state["w"][0]) - 3.0)

    chosen, state, tried = greedy_mean(["a", "b", "c", "d"], states.__getitem__, score)
    assert asked == [["a"], ["a", "b"], ["a", "b", "c"], ["a", "b", "d"]]
    assert chosen == ["a", "b", "d"]
    assert tried == pytest.approx({"a": -1.0, "b": 0.0, "c": -(14 / 3 - 3), "d": 0.0})
    assert state["w"].dtype == torch.float32 and torch.allclose(state["w"], torch.full((2,), 3.0))
    assert torch.equal(state["step"], torch.tensor(7))  # not a float: taken as it is


def test_prompt_stage_from_init_repeats_the_in_process_stage_and_records_its_soup(tmp_path):
    both = run(TrainConfig(model="recgpt", out=str(tmp_path / "both"), stages="pretrain,prompt", **FAST),
               log=lambda *_: None)
    pre = tmp_path / "pre"
    run(TrainConfig(model="recgpt", out=str(pre), stages="pretrain", **FAST), log=lambda *_: None)
    alone = run(TrainConfig(model="recgpt", out=str(tmp_path / "alone"), stages="prompt", init=str(pre), **FAST),
                log=lambda *_: None)

    def prompt_rows(name: str) -> list[dict]:
        rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows if r["stage"] == "prompt"]

    assert prompt_rows("both") == prompt_rows("alone") and prompt_rows("both")
    assert both["test_two_stage"]["NDCG@10"] == pytest.approx(alone["test_two_stage"]["NDCG@10"], abs=1e-9)
    soup = both["soup"]["prompt"]
    rows = prompt_rows("both")
    assert soup["best_single"] == pytest.approx(max(r["valid_two_stage"]["NDCG@10"] for r in rows))
    assert soup["valid_select"] >= soup["best_single"]
    assert not list((tmp_path / "both").glob("prompt.epoch*.safetensors"))
    if len(soup["epochs"]) > 1:  # the soup is what was saved and tested
        assert (tmp_path / "both" / "prompt.soup.safetensors").exists()
        assert soup["test_NDCG@10_not_for_selection"]["soup"]["test"] == pytest.approx(both["test"]["NDCG@10"])


@pytest.mark.parametrize("model_name", ["sasrec", "comirec"])
def test_pretraining_ends_with_its_soup_by_default_and_pretrain_soup_0_keeps_the_best_epoch(tmp_path, model_name):
    souped = run(TrainConfig(model=model_name, out=str(tmp_path / "soup"), threads=1, **FAST), log=lambda *_: None)
    plain = run(TrainConfig(model=model_name, out=str(tmp_path / "plain"), extra={"pretrain_soup": 0}, threads=1,
                            **FAST), log=lambda *_: None)
    info = souped["soup"]["pretrain"]
    # the soup changes only how the stage ends: both runs trained the same epochs, and the soup's first
    # ingredient is the epoch the plain run ends with
    assert info["best_single"] == pytest.approx(plain["valid"]["NDCG@10"], abs=1e-9)
    assert info["valid_select"] >= info["best_single"]
    assert souped["valid"]["NDCG@10"] == pytest.approx(info["valid_select"], abs=1e-9)
    assert "soup" not in plain and not list((tmp_path / "plain").glob("pretrain.soup.*"))
    final = load_weights(tmp_path / "soup" / "best.safetensors")
    kept = "pretrain.soup.safetensors" if len(info["epochs"]) > 1 else "pretrain.best.safetensors"
    assert all(torch.equal(final[k], v) for k, v in load_weights(tmp_path / "soup" / kept).items())
    assert not list((tmp_path / "soup").glob("pretrain.epoch*.safetensors"))
    # config.json records the choice, so that a --resume keeps it
    assert json.loads((tmp_path / "soup" / "config.json").read_text())["extra"]["pretrain_soup"] == 5
    assert json.loads((tmp_path / "plain" / "config.json").read_text())["extra"]["pretrain_soup"] == 0


@pytest.mark.parametrize("peak, chosen", [(3.5, 0.7), (6.0, 1.0), (-1.0, 0.5)])
def test_mix_with_start_picks_the_weight_that_validates_best_and_never_loses_to_the_unmixed_result(
        tmp_path, peak, chosen):
    model = torch.nn.Linear(2, 1)
    save_checkpoint(tmp_path / "start.safetensors", _at(model, 0.0))
    _at(model, 5.0)  # the stage's result; a * 5 is the mixed weight

    def validate() -> float:
        return -abs(float(model.weight[0, 0].detach()) - peak)

    info = mix_with_start(tmp_path / "start.safetensors", model, validate, (0.9, 0.7, 0.5))
    assert info["alpha"] == chosen
    assert info["unmixed"] == pytest.approx(-abs(5.0 - peak)) and info["valid_select"] >= info["unmixed"]
    assert sorted(info["tried"]) == ["0.5", "0.7", "0.9", "1.0"]
    assert torch.allclose(model.weight, torch.full_like(model.weight, 5.0 * chosen))
    assert torch.allclose(model.bias, torch.full_like(model.bias, -5.0 * chosen))


def test_mix_start_option():
    assert mix_alphas(False) == () and mix_alphas(0) == () and mix_alphas(True) == MIX_ALPHAS
    assert mix_alphas([0.5, 0.8]) == (0.5, 0.8) and mix_alphas(0.6) == (0.6,)
    for bad in ([1.5], [], "yes", [True]):
        with pytest.raises(ValueError, match="mix_start"):
            mix_alphas(bad)


def test_prompt_stage_mixed_with_its_start_is_what_the_run_keeps(tmp_path, capsys):
    pre = tmp_path / "pre"
    run(TrainConfig(model="recgpt", out=str(pre), stages="pretrain", **FAST), log=lambda *_: None)
    out = tmp_path / "mixed"
    res = run(TrainConfig(model="recgpt", out=str(out), stages="prompt", init=str(pre),
                          extra={"mix_start": [0.5, 0.0]}, **FAST), log=lambda *_: None)
    info = res["mix_start"]["prompt"]
    assert sorted(info["tried"]) == ["0.0", "0.5", "1.0"] and info["valid_select"] >= info["unmixed"]
    # a = 0 is the start itself: its validation is the pre-trained model's two-stage score
    split = leave_one_out(load_dataset("synthetic"))
    start_valid = evaluate_recall(load_run_model(pre), split.valid_hist, split.valid_target, split.users,
                                  {10: (9, 1)}, append=1)["NDCG@10"]
    assert info["tried"]["0.0"] == pytest.approx(start_valid, abs=1e-9)
    assert not (out / "prompt.start.safetensors").exists()
    final = load_weights(out / "best.safetensors")
    if info["alpha"] < 1.0:
        kept = load_weights(out / "prompt.mix.safetensors")
        assert all(torch.equal(final[k], v) for k, v in kept.items())
        both = info["test_NDCG@10_not_for_selection"]
        assert both["mixed"]["test"] == pytest.approx(res["test"]["NDCG@10"])
    else:
        assert not (out / "prompt.mix.safetensors").exists()
    if info["alpha"] == 0.0:
        start = load_weights(pre / "best.safetensors")
        assert all(torch.equal(final[k], v) for k, v in start.items())

    # bench/mix_start.py walks the same line after the fact: a = 0 is the start run, a = 1 the run's final model
    threads = torch.get_num_threads()
    try:
        bench_mix_start([str(out), str(pre), "0", "1", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    rows = [r.split("|")[1:-1] for r in capsys.readouterr().out.splitlines()[4:]]
    test_at = {float(r[0]): float(r[3]) for r in rows}
    assert test_at[1.0] == pytest.approx(res["test"]["NDCG@10"], abs=1e-5)
    assert test_at[0.0] == pytest.approx(json.loads((pre / "metrics.json").read_text())["test"]["NDCG@10"], abs=1e-5)


def test_seed_soup_bench_scores_each_run_and_their_average(tmp_path, capsys):
    pre = tmp_path / "pre"
    run(TrainConfig(model="recgpt", out=str(pre), stages="pretrain", **FAST), log=lambda *_: None)
    tuned = []
    for seed in (1, 2):
        out = tmp_path / f"tuned{seed}"
        tuned.append(run(TrainConfig(model="recgpt", out=str(out), stages="prompt", init=str(pre), seed=seed,
                                     **FAST), log=lambda *_: None))
    a, b = (load_weights(tmp_path / f"tuned{s}" / "best.safetensors") for s in (1, 2))
    mean = mean_state([a, b])
    k = next(k for k, v in a.items() if v.is_floating_point() and not torch.equal(v, b[k]))
    assert torch.allclose(mean[k], (a[k] + b[k]) / 2)  # the seeds did move the weights apart

    threads = torch.get_num_threads()
    try:
        bench_seed_soup([str(pre), str(tmp_path / "tuned1"), str(tmp_path / "tuned2"), "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    rows = [r.split("|")[1:-1] for r in capsys.readouterr().out.splitlines()[4:]]
    assert len(rows) == 5  # start, two runs, the uniform soup, the greedy soup
    test_of = {r[0].strip(): float(r[3]) for r in rows}
    assert test_of["start"] == pytest.approx(json.loads((pre / "metrics.json").read_text())["test"]["NDCG@10"],
                                             abs=1e-5)
    for seed, res in zip((1, 2), tuned, strict=True):
        assert test_of[f"`tuned{seed}`"] == pytest.approx(res["test"]["NDCG@10"], abs=1e-5)
    valid_two = {r[0].strip(): float(r[2]) for r in rows}
    greedy = next(n for n in valid_two if n.startswith("greedy"))
    assert valid_two[greedy] >= max(v for n, v in valid_two.items() if n.startswith("`"))  # never below its best run

    with pytest.raises(SystemExit, match="not fine-tuned from"):  # a run with another start is refused
        bench_seed_soup([str(tmp_path / "tuned1"), str(tmp_path / "tuned2")])
