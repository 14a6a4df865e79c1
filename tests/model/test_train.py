"""Training on the built-in synthetic data: every model learns its order; a killed run resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from model import stages
from model.prompt import PromptConfig
from model.stages import DATA_PROMPT_DEFAULTS, EXTRA_KEYS, apply_data_defaults, check_extra, recall_options
from model.train import TrainConfig, output_head, resolve_device, run

FAST = dict(data="synthetic", epochs=6, patience=6, dropout=0.2, lr=3e-3, batch_size=64, d_model=32)


@pytest.fixture(scope="module")
def pop_hr10(tmp_path_factory) -> float:
    out = tmp_path_factory.mktemp("pop")
    return run(TrainConfig(model="pop", out=str(out), **FAST), log=lambda *_: None)["test"]["HR@10"]


@pytest.mark.parametrize("model,loss", [("sasrec", "ce"), ("sasrec", "bce"), ("recgpt", "sampled-softmax"),
                                        ("gru4rec", "ce"), ("bert4rec", "ce")])
def test_every_model_learns_the_synthetic_order(model, loss, pop_hr10, tmp_path):
    cfg = TrainConfig(model=model, loss=loss, out=str(tmp_path), stages="pretrain", **FAST)
    if loss == "bce":
        cfg.n_neg, cfg.epochs, cfg.patience = 8, 10, 10  # one BCE negative learns too slowly for a test
    if model == "gru4rec":
        cfg.epochs, cfg.patience = 15, 15  # a GRU takes a few epochs to leave the popularity plateau
    if model == "bert4rec":
        # NOTE: with the default 40% masked (best measured on Beauty) BERT4Rec stayed at popularity level on
        # this synthetic set for 10 epochs (valid HR@10 ~0.05); with 20% it reached 0.43. Not understood yet.
        cfg.extra, cfg.epochs, cfg.patience = {"bert_mask_prob": 0.2}, 12, 12
    result = run(cfg, log=lambda *_: None)
    assert result["test"]["HR@10"] > 3 * pop_hr10, (result["test"]["HR@10"], pop_hr10)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert set(result["test"]) == {f"{m}@{k}" for m in ("HR", "NDCG") for k in (5, 10, 20, 50)} | {"MRR"}


def test_a_killed_run_resumes_to_the_same_result(tmp_path):
    args = ["--data", "synthetic", "--model", "sasrec", "--loss", "ce", "--epochs", "20", "--patience", "30",
            "--d-model", "32", "--batch-size", "64", "--seed", "3"]
    cli = [sys.executable, "-m", "service.cli", "train"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ref = tmp_path / "ref"
    subprocess.run([*cli, *args, "--out", str(ref)], check=True, capture_output=True, env=env)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cli, *args, "--out", str(killed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until two epochs are checkpointed, then kill -9
        lines = (killed / "metrics.jsonl").read_text().splitlines() if (killed / "metrics.jsonl").exists() else []
        if len(lines) >= 2 and (killed / "pretrain.last.safetensors").exists():
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists(), "the run finished before it could be killed"

    subprocess.run([*cli, "--out", str(killed), "--resume", *args], check=True, capture_output=True, env=env)
    rows = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 21))
    a = json.loads((ref / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert b["test"] == pytest.approx(a["test"], abs=1e-9)  # the same run, as if it had never stopped


def test_prompt_tuning_after_pretraining(tmp_path):
    cfg = TrainConfig(model="recgpt", loss="ce", out=str(tmp_path), stages="pretrain,prompt", **FAST)
    cfg.extra = {"prompt_length": 2, "prompt_placement": "all", "user_module": True}
    result = run(cfg, log=lambda *_: None)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in rows] == ["pretrain"] * 6 + ["prompt"] * len(rows[6:]) and len(rows) > 6
    assert all("valid_two_stage" in r for r in rows[6:])
    two = result["test_two_stage"]
    assert two["append"] == 2 and two["splits"]["10"] == [9, 1]
    assert two["HR@10"] > 0.2 and result["test"]["HR@10"] > 0.2
    # the inference user vector is chosen on validation and saved with the model, so the service uses it too
    choice = result["infer_user"]
    valid = choice["valid_NDCG@10"]
    assert choice["chosen"] == ("own" if valid["own"] > valid["unknown"] * (1 + choice["margin"]) else "unknown")
    assert json.loads((tmp_path / "model.json").read_text())["config"]["infer_user"] == choice["chosen"]
    # the test figure of either vector is recorded (not used to choose): the chosen one is the test block's
    assert choice["test_NDCG@10_not_for_selection"][choice["chosen"]] == pytest.approx(result["test"]["NDCG@10"])


def test_a_two_stage_run_records_its_pretraining_alone_as_a_pretrain_run_scores_it(tmp_path):
    """`--stages pretrain,prompt` records pre-training alone (pretrain_* blocks): the figures a `--stages pretrain`
    run of the same seed writes, its own inference user vector and recall (appending all N) included."""
    fast = {**FAST, "epochs": 3, "patience": 3}
    extra = {"user_module": True, "pretrain_soup": 2}
    both = run(TrainConfig(model="recgpt", stages="pretrain,prompt", out=str(tmp_path / "both"), extra=dict(extra),
                           **fast), log=lambda *_: None)
    alone = run(TrainConfig(model="recgpt", stages="pretrain", out=str(tmp_path / "alone"), extra=dict(extra),
                            **fast), log=lambda *_: None)
    for block in ("valid", "test", "test_two_stage"):
        figures = {k: v for k, v in alone[block].items() if isinstance(v, float)}
        assert figures and {k: both[f"pretrain_{block}"][k] for k in figures} == pytest.approx(figures, abs=1e-6)
    assert both["pretrain_test_two_stage"]["append"] == "all" and both["test_two_stage"]["append"] == 1
    assert both["pretrain_infer_user"]["valid_NDCG@10"] == pytest.approx(alone["infer_user"]["valid_NDCG@10"])
    assert both["pretrain_infer_user"]["chosen"] == alone["infer_user"]["chosen"]
    # the run's own blocks are the prompt-tuned model's, with its own vector choice, served as saved
    assert both["test"] != both["pretrain_test"]
    saved = json.loads((tmp_path / "both" / "model.json").read_text())["config"]["infer_user"]
    assert saved == both["infer_user"]["chosen"]
    # `recgpt eval` reads the blocks as RUN:pretrain_test
    from model.report import compare_runs

    _, rows = compare_runs([f"{tmp_path / 'both'}:pretrain_test", str(tmp_path / "alone")])
    assert rows[0]["NDCG@10"] == pytest.approx(rows[1]["NDCG@10"], abs=1e-6)
    # a run finished before the blocks existed gets them from `--resume` (no training: every stage is done)
    metrics = tmp_path / "both" / "metrics.json"
    old = json.loads(metrics.read_text())
    metrics.write_text(json.dumps({k: v for k, v in old.items() if not k.startswith("pretrain_")}))
    again = run(TrainConfig(out=str(tmp_path / "both")), resume=True, log=lambda *_: None)
    assert again["pretrain_test"] == both["pretrain_test"] and again["test"] == both["test"]
    assert again["epochs"] == both["epochs"]


def test_an_output_head_leaves_pretraining_alone_repeats_from_init_and_serves_with_prompt_head_serve(tmp_path):
    """`--set prompt_head=separate`: pre-training is the tied model's to the digit (the head is unused and draws no
    random numbers), the prompt stage trains the head apart from the item table, and `--stages prompt --init` from a
    pre-trained run without a head repeats the prompt stage of `--stages pretrain,prompt`. `--set prompt_head=serve`
    trains the same first epoch, and the run is tested and exported on the head's ranking."""
    from safetensors.torch import load_file

    fast = {**FAST, "epochs": 3, "patience": 3}
    head = {"prompt_head": "separate", "user_module": False}

    def rows(out):
        return [json.loads(x) for x in (tmp_path / out / "metrics.jsonl").read_text().splitlines()]

    run(TrainConfig(model="recgpt", loss="ce", stages="pretrain,prompt", out=str(tmp_path / "both"),
                    extra=dict(head), **fast), log=lambda *_: None)
    run(TrainConfig(model="recgpt", loss="ce", stages="pretrain", out=str(tmp_path / "pre"),
                    extra={"user_module": False}, **fast), log=lambda *_: None)
    run(TrainConfig(model="recgpt", loss="ce", stages="prompt", init=str(tmp_path / "pre"),
                    out=str(tmp_path / "tuned"), extra=dict(head), **fast), log=lambda *_: None)
    both = rows("both")
    pre = [{k: v for k, v in r.items() if k != "wall_s"} for r in both if r["stage"] == "pretrain"]
    assert pre == [{k: v for k, v in r.items() if k != "wall_s"} for r in rows("pre")]
    prompt = [(r["loss"], r["valid_two_stage"]) for r in both if r["stage"] == "prompt"]
    assert prompt == [(r["loss"], r["valid_two_stage"]) for r in rows("tuned")] and prompt
    assert json.loads((tmp_path / "both" / "model.json").read_text())["config"]["output_head"] == "separate"
    w = load_file(str(tmp_path / "both" / "best.safetensors"))
    assert not torch.equal(w["model.out_table"], w["model.item_emb.weight"])
    assert "model.out_table" not in load_file(str(tmp_path / "pre" / "best.safetensors"))
    # what `recgpt export` and the service load: the head comes back, and ranking reads the item table
    from model.io import load_run_model

    served = load_run_model(tmp_path / "both")
    assert torch.equal(served.output_table(), w["model.out_table"])
    assert torch.equal(served.item_embeddings(), w["model.item_emb.weight"])
    # prompt_head=serve: the same start, and the head is what the run is selected, tested and served on
    serve = run(TrainConfig(model="recgpt", loss="ce", stages="prompt", init=str(tmp_path / "pre"),
                            out=str(tmp_path / "serve"), extra={**head, "prompt_head": "serve"}, **fast),
                log=lambda *_: None)
    first = rows("serve")[0]
    assert first["loss"] == [r for r in both if r["stage"] == "prompt"][0]["loss"]
    served = load_run_model(tmp_path / "serve")
    w = load_file(str(tmp_path / "serve" / "best.safetensors"))
    assert torch.equal(served.item_embeddings(), w["model.out_table"])
    assert not torch.equal(served.item_embeddings(), served.item_emb.weight)
    from model.data import leave_one_out, load_dataset
    from model.evaluate import evaluate

    split = leave_one_out(load_dataset("synthetic"))
    assert evaluate(served, split.test_hist, split.test_target, split.users)["NDCG@10"] == pytest.approx(
        serve["test"]["NDCG@10"], abs=1e-9)


def test_prompt_head_lr_trains_the_output_head_at_its_own_rate(tmp_path):
    """`--set prompt_head_lr=0` with `prompt_head=serve`: the head keeps the pre-trained item table it was copied from
    (through every epoch, the soup and the mix), while the rest of the model trains at prompt_lr; without a head the
    option is refused."""
    from safetensors.torch import load_file

    fast = {**FAST, "epochs": 2, "patience": 2}
    run(TrainConfig(model="recgpt", loss="ce", stages="pretrain", out=str(tmp_path / "pre"),
                    extra={"user_module": False}, **fast), log=lambda *_: None)
    head = {"user_module": False, "prompt_head": "serve", "prompt_head_lr": 0.0, "mix_start": True}
    run(TrainConfig(model="recgpt", loss="ce", stages="prompt", init=str(tmp_path / "pre"), out=str(tmp_path / "t"),
                    extra=head, **fast), log=lambda *_: None)
    pre = load_file(str(tmp_path / "pre" / "best.safetensors"))["model.item_emb.weight"]
    tuned = load_file(str(tmp_path / "t" / "best.safetensors"))
    assert torch.equal(tuned["model.out_table"], pre)
    assert not torch.allclose(tuned["model.item_emb.weight"], pre)  # the item table trained
    with pytest.raises(ValueError, match="prompt_head_lr.*separate or serve"):
        run(TrainConfig(model="recgpt", loss="ce", stages="prompt", init=str(tmp_path / "pre"),
                        out=str(tmp_path / "tied"), extra={"user_module": False, "prompt_head_lr": 1e-4}, **fast),
            log=lambda *_: None)


@pytest.mark.parametrize("want", ["auto", "unknown"])
def test_a_user_module_run_selects_its_epochs_on_the_vector_it_serves(want, tmp_path):
    """Epochs, soups and early stopping of a model with a user module follow the validation of the vector it would
    serve (chosen each time as `choose_infer_user` chooses at the end), not of users' own vectors."""
    from model.user_module import pick_infer_user

    fast = {**FAST, "epochs": 3, "patience": 3}
    extra = {"user_module": True, "pretrain_soup": 0, "soup": 0} | ({} if want == "auto" else {"infer_user": want})
    result = run(TrainConfig(model="recgpt", stages="pretrain,prompt", out=str(tmp_path), extra=extra, **fast),
                 log=lambda *_: None)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    for stage in ("pretrain", "prompt"):
        best = -1.0
        for r in (r for r in rows if r["stage"] == stage):
            served = r["served"]
            pick = pick_infer_user(served) if want == "auto" else want
            assert served["chosen"] == pick
            # the row's own blocks are the own vectors' (one-stage in pre-training, two-stage in prompt-tuning)
            own = r["valid_two_stage" if stage == "prompt" else "valid"]["NDCG@10"]
            assert served["own"] == pytest.approx(own)
            assert r["best"] == (served[pick] > best)
            best = max(best, served[pick]) if r["best"] else best
    # with no soup, the final weights are the last best epoch of the prompt stage: the final choice is made on them
    last_best = [r for r in rows if r["stage"] == "prompt" and r["best"]][-1]["served"]
    assert result["infer_user"]["valid_NDCG@10"] == pytest.approx({h: last_best[h] for h in ("own", "unknown")})
    with pytest.raises(ValueError, match="infer_user must be"):
        run(TrainConfig(model="recgpt", stages="pretrain", out=str(tmp_path / "bad"),
                        extra={"user_module": True, "infer_user": "mine"}, **fast), log=lambda *_: None)


def test_the_own_user_vector_must_win_validation_by_the_margin():
    from model.user_module import pick_infer_user

    assert pick_infer_user({"own": 0.0674, "unknown": 0.0670}, margin=0.02) == "unknown"  # +0.6%: not enough
    assert pick_infer_user({"own": 0.0690, "unknown": 0.0670}, margin=0.02) == "own"  # +3.0%
    assert pick_infer_user({"own": 0.0674, "unknown": 0.0670}, margin=0.0) == "own"  # the plain argmax
    assert pick_infer_user({"own": 0.0600, "unknown": 0.0670}, margin=0.0) == "unknown"


def test_recgpt_without_its_user_module_is_sasrec_in_shape():
    from model.data import leave_one_out, load_dataset
    from model.train import build_model

    data = load_dataset("synthetic")
    split = leave_one_out(data)
    on = build_model(TrainConfig(model="recgpt", extra={"user_module": True}, **FAST), data, split)
    off = build_model(TrainConfig(model="recgpt", **FAST), data, split)  # the default: no user module
    sasrec = build_model(TrainConfig(model="sasrec", **FAST), data, split)
    assert on.user_emb is not None and off.user_emb is None
    assert {k: v.shape for k, v in off.state_dict().items()} == {k: v.shape for k, v in sasrec.state_dict().items()}
    with pytest.raises(ValueError, match="user_module must be true or false"):
        build_model(TrainConfig(model="recgpt", extra={"user_module": "no"}, **FAST), data, split)


def test_user_module_default_resume_and_init(tmp_path):
    """Runs from before the default changed (config.json without the key) had the module: --resume keeps
    it; --init takes the pre-trained run's choice; a model that does not fit the --init run, or an --init folder
    without weights, is a clear error."""
    fast = {**FAST, "epochs": 1, "patience": 1}
    on = tmp_path / "on"
    run(TrainConfig(model="recgpt", stages="pretrain", out=str(on), extra={"user_module": True}, **fast),
        log=lambda *_: None)
    tuned = tmp_path / "tuned"
    run(TrainConfig(model="recgpt", stages="prompt", init=str(on), out=str(tuned), **fast), log=lambda *_: None)
    assert json.loads((tuned / "config.json").read_text())["extra"]["user_module"] is True
    assert json.loads((tuned / "model.json").read_text())["config"]["user_module"] is True

    legacy = json.loads((on / "config.json").read_text())
    del legacy["extra"]["user_module"]
    (on / "config.json").write_text(json.dumps(legacy))
    (on / "metrics.json").unlink()
    run(TrainConfig(out=str(on), epochs=1), resume=True, log=lambda *_: None)  # loads the module's weights
    assert json.loads((on / "config.json").read_text())["extra"]["user_module"] is True

    with pytest.raises(ValueError, match="do not fit"):
        run(TrainConfig(model="recgpt", stages="prompt", init=str(on), out=str(tmp_path / "bad"),
                        extra={"user_module": False}, **fast), log=lambda *_: None)

    # a committed run folder (config and metrics, no weights) is no --init: said before anything is written
    (on / "best.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no best.safetensors"):
        run(TrainConfig(model="recgpt", stages="prompt", init=str(on), out=str(tmp_path / "bare"), **fast),
            log=lambda *_: None)
    assert not (tmp_path / "bare").exists()


def test_comirec_learns_and_recalls_with_several_interests(pop_hr10, tmp_path):
    import numpy as np

    from model.recall import torch_search, two_stage_recall

    cfg = TrainConfig(model="comirec", out=str(tmp_path), **{**FAST, "epochs": 10, "patience": 10})
    result = run(cfg, log=lambda *_: None)
    assert result["test"]["HR@10"] > 3 * pop_hr10
    from model.io import load_run_model

    model = load_run_model(tmp_path)
    hist = [np.array([3, 4, 5]), np.array([7])]
    res = two_stage_recall(model, hist, np.array([1, 2]), 10, 0, torch_search(model.item_embeddings()))
    scores = model.score(hist, np.array([1, 2]))
    for r, h in enumerate(hist):  # the merged per-interest lists == top-10 of the max-over-interests scores
        s = scores[r].clone()
        s[0] = -float("inf")
        s[h] = -float("inf")
        assert res.items[r].tolist() == s.topk(10).indices.tolist()


def test_device_choice():
    """--device auto takes the GPU only when torch sees one; asking for a missing GPU is a clear error."""
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(RuntimeError):
        resolve_device("no-such-device")


def test_two_runs_of_one_seed_repeat_to_the_digit_with_two_threads(tmp_path):
    # NOTE: without torch's deterministic algorithms these drifted apart from the third epoch on some machines
    # (model/train.py); on others they repeat without it, so this guards reproducibility, not the flag itself
    cfg = dict(data="synthetic", model="sasrec", loss="ce", epochs=4, patience=4, dropout=0.2, lr=3e-3,
               batch_size=64, d_model=32, threads=2)
    for name in ("a", "b"):
        run(TrainConfig(out=str(tmp_path / name), extra={"pretrain_soup": 0}, **cfg), log=lambda *_: None)

    def rows(name: str) -> list[dict]:
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k != "wall_s"} for x in lines]

    assert rows("a") == rows("b") and len(rows("a")) == 4
    assert not torch.are_deterministic_algorithms_enabled()  # run() leaves the process as it found it


def test_two_stage_options_fail_before_training_and_the_control_appends_one_item(tmp_path):
    with pytest.raises(ValueError, match="two_stage_append"):
        run(TrainConfig(data="synthetic", model="sasrec", out=str(tmp_path / "bad"), extra={"two_stage_append": 0}),
            log=lambda *_: None)
    assert not (tmp_path / "bad" / "metrics.jsonl").exists()  # it failed before the first epoch
    # NOTE: the control (prompt length 0) once appended 0 items and crashed at its first prompt-stage validation
    control = TrainConfig(data="synthetic", model="recgpt", stages="pretrain,prompt", extra={"prompt_length": 0})
    assert recall_options(control)[1] == 1
    assert recall_options(TrainConfig(data="synthetic", model="recgpt", stages="pretrain,prompt",
                                      extra={"prompt_length": 3}))[1] == 3
    assert recall_options(TrainConfig(data="synthetic", model="sasrec", stages="pretrain"))[1] == "all"


def test_a_named_data_set_takes_its_prompt_defaults_where_set_is_silent():
    yelp = TrainConfig(data="Yelp", model="recgpt")  # no --stages: recgpt's pretrain,prompt
    assert apply_data_defaults(yelp) == {"prompt_length": 3}  # what it took, for `recgpt train` to say
    yelp.stages = yelp.resolved_stages()  # as run() resolves them, before recall_options
    assert yelp.extra["prompt_length"] == 3 and recall_options(yelp)[1] == 3  # stage 2 appends the prompt's 3
    told = TrainConfig(data="yelp", model="sasrec", stages="prompt", extra={"prompt_length": 1})
    assert apply_data_defaults(told) == {}
    assert told.extra == {"prompt_length": 1}  # --set wins
    sports = TrainConfig(data="Sports", model="recgpt", stages="prompt")
    assert apply_data_defaults(sports) == {"prompt_weight": 3}
    beauty = TrainConfig(data="beauty", model="recgpt", stages="prompt")
    assert apply_data_defaults(beauty) == {"prompt_weight": 3, "prompt_head": "serve", "prompt_head_lr": 2.5e-4}
    assert output_head(beauty) == "serve"  # the model is built with the head it ranks by
    tied = TrainConfig(data="beauty", model="recgpt", stages="prompt", extra={"prompt_head": "tied"})
    assert apply_data_defaults(tied) == {"prompt_weight": 3}  # no head, so no head rate (it would be refused)
    toys = TrainConfig(data="toys", model="recgpt", stages="prompt")
    assert apply_data_defaults(toys) == {"prompt_placement": "all", "prompt_seen": "prefix", "prompt_head": "serve"}
    assert output_head(toys) == "serve"
    last = TrainConfig(data="toys", model="recgpt", stages="prompt", extra={"prompt_placement": "last"})
    # prompt_seen acts with placement all only: left out, not an error; the head is taken
    assert apply_data_defaults(last) == {"prompt_head": "serve"}
    # NOTE: PromptConfig.from_extra skips keys that are not its fields: a misspelt default would do nothing unseen
    assert {key for defaults in DATA_PROMPT_DEFAULTS.values() for key in defaults} <= EXTRA_KEYS
    for name, defaults in DATA_PROMPT_DEFAULTS.items():
        for key, val in defaults.items():
            if key == "prompt_head_lr":  # a stage setting, not a PromptConfig field: the global default is None
                assert defaults["prompt_head"] != "tied" and val > 0, name
                continue
            field = key.removeprefix("prompt_")
            assert getattr(PromptConfig.from_extra(defaults), field) == val != getattr(PromptConfig(), field), name
    bce = TrainConfig(data="beauty", model="recgpt", stages="prompt", extra={"prompt_loss": "bce"})
    apply_data_defaults(bce)
    # the weight is for full CE only: left out
    assert bce.extra == {"prompt_loss": "bce", "prompt_head": "serve", "prompt_head_lr": 2.5e-4}
    for cfg in (TrainConfig(data="yelp", model="sasrec", stages="pretrain"),  # no prompt stage
                TrainConfig(data="synthetic", model="recgpt", stages="pretrain,prompt")):  # no entry: the defaults
        apply_data_defaults(cfg)
        assert cfg.extra == {}


def test_recgpt_train_records_the_data_sets_prompt_default_and_experiments_keep_the_global_ones(tmp_path,
                                                                                               monkeypatch, capsys):
    from service.cli import main

    monkeypatch.setitem(stages.DATA_PROMPT_DEFAULTS, "synthetic", {"prompt_length": 2})
    assert main(["train", "--data", "synthetic", "--model", "recgpt", "--epochs", "1", "--d-model", "16",
                 "--out", str(tmp_path / "cli")]) == 0
    assert "synthetic: --set prompt_length=2 (this data set's default" in capsys.readouterr().err
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["extra"]["prompt_length"] == 2
    run(TrainConfig(model="recgpt", out=str(tmp_path / "grid"), **{**FAST, "epochs": 1}), log=lambda *_: None)
    assert "prompt_length" not in json.loads((tmp_path / "grid" / "config.json").read_text())["extra"]


def test_a_misspelt_set_option_is_a_clear_error_not_silently_the_default(tmp_path, capsys):
    from service.cli import main

    # NOTE: --set prompt_placment=all once trained the default placement without a word
    assert main(["train", "--data", "synthetic", "--model", "recgpt", "--epochs", "1", "--set", "prompt_placment=all",
                 "--out", str(tmp_path / "cli")]) == 2
    err = capsys.readouterr().err
    assert "unknown --set option 'prompt_placment' (did you mean prompt_placement?)" in err, err
    assert not (tmp_path / "cli").exists()  # refused before anything is written
    assert main(["experiments", "main", "--datasets", "synthetic", "--set", "usermodule=true",
                 "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "tables")]) == 2
    assert "'usermodule' (did you mean user_module?)" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ValueError, match="'two_stage_split'.*two_stage_splits"):  # sweeps and experiments call run()
        run(TrainConfig(model="sasrec", out=str(tmp_path / "run"), extra={"two_stage_split": {}}, **FAST))
    check_extra({"prompt_length": 3, "prompt_lr": 1e-3, "user_module": False})  # known keys pass


def test_every_option_the_code_reads_is_a_known_set_option():
    import re
    from pathlib import Path

    # the keys read as extra.get("key" / extra["key"] / extra.setdefault("key" anywhere under model/
    code = "".join(p.read_text() for p in Path(stages.__file__).parent.glob("*.py"))
    read = set(re.findall(r"extra(?:\.get\(|\[|\.setdefault\()\"(\w+)\"", code))
    assert {"prompt_lr", "two_stage_splits", "pop_counts", "bert_mask_prob"} <= read  # the pattern finds them
    assert read <= EXTRA_KEYS, read - EXTRA_KEYS
