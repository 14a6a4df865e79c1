"""The greedy soup of a stage's best epochs: which epochs are kept, which join, and what the weights become."""

import json

import pytest
import torch

from model.checkpoint import load_weights
from model.soup import greedy_soup, keep_epoch, kept_epochs
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
