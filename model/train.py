"""Training: one loop for every trainable model, early stopping on validation NDCG@10, a run folder.

Run folder: config.json (resolved), model.json, idmap.json, popularity.json, metrics.jsonl (one line an
epoch, tagged with its stage), per stage STAGE.last.safetensors (model + Adam + RNG, for --resume),
STAGE.best.safetensors and STAGE.done, with a soup (model/soup.py: prompt-tuning's default) the kept epochs
STAGE.epochE.safetensors while it runs and STAGE.soup.safetensors / STAGE.soup.json after, then best.safetensors
(the last stage's soup or best epoch), curves.png and metrics.json (its block "env": what ran it,
model/runenv.py). Stages (model/stages.py): "pretrain" (every model) and "prompt" (recgpt's prompt-tuning,
model/prompt.py).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .baselines import BERT4Rec, GRU4Rec, PopModel
from .batching import length_batches, training_windows
from .checkpoint import load_checkpoint, save_checkpoint
from .comirec import ComiRecSA
from .data import SeqData, Split, leave_one_out, load_dataset
from .evaluate import evaluate
from .gpt import GPTConfig, GPTRec
from .io import model_spec
from .plots import plot_curves
from .prompt import PromptConfig
from .runenv import run_environment
from .soup import greedy_soup, keep_epoch, mix_with_start
from .stages import (
    DEFAULT_PRETRAIN_SOUP,
    Stage,
    check_extra,
    choose_infer_user,
    earlier_stages_alone,
    final_metrics,
    make_stages,
    recall_options,
    test_of,
)
from .user_module import DEFAULT_USER_MODULE, resolve_user_module, saved_user_module

MODELS = ("pop", "gru4rec", "sasrec", "bert4rec", "comirec", "recgpt")
# NOTE: measured on Beauty (2 cores). Full-softmax CE: random batches of 64 users at lr 2e-3 reach valid
# NDCG@10 0.064 at epoch 8 (190 s); 32 users at 1e-3 need ~10 epochs at 28 s; 128 users are slower an epoch
# (each random batch pads to ~50 columns). Length-bucketed batches are faster an epoch, but with CE they
# level off lower (valid 0.0595 vs > 0.064). BCE learns per negative: 16 negatives a position, bucketed.
LOSS_DEFAULTS = {"ce": {"batch_size": 64, "lr": 2e-3, "n_neg": 1, "bucket": False},
                 "bce": {"batch_size": 64, "lr": 1e-3, "n_neg": 16, "bucket": True},
                 "sampled-softmax": {"batch_size": 64, "lr": 1e-3, "n_neg": 4, "bucket": True}}
# NOTE: recgpt pre-trains with CE by default (the paper says BCE): on Beauty, CE pre-training is the better
# start for prompt-tuning, whose own loss is CE; sasrec keeps BCE, the loss of its published row.
DEFAULT_LOSS = {"sasrec": "bce", "recgpt": "ce", "gru4rec": "ce", "bert4rec": "ce", "comirec": "ce"}


# NOTE: BERT4Rec's cloze masking already regularises: with dropout 0.3 and 40% of items masked it reached
# test NDCG@10 0.0293 on Beauty in 8 minutes, against 0.0143 with dropout 0.5 and 20% masked (4 minutes).
MODEL_DEFAULTS = {"bert4rec": {"dropout": 0.3}}


@dataclass
class TrainConfig:
    data: str = "synthetic"
    model: str = "sasrec"
    out: str = "runs/default"
    loss: str | None = None  # bce | sampled-softmax | ce; None: the model's default
    n_neg: int | None = None  # BCE negatives per position (default 16); sampled-softmax: x256 per batch (default 4)
    sampler: str = "uniform"  # uniform | pop
    lr: float | None = None  # default by loss (see LOSS_DEFAULTS)
    weight_decay: float = 0.0
    batch_size: int | None = None  # users per batch; default by loss (see LOSS_DEFAULTS)
    epochs: int = 200
    patience: int = 10  # epochs without a better validation NDCG@10
    max_minutes: float | None = None  # stop (keeping the best epoch) after this much training time
    seed: int = 1
    max_len: int = 50
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    d_ff: int = 256
    dropout: float | None = None  # default by model (MODEL_DEFAULTS), else 0.5
    user_dropout: float = 0.5  # recgpt: Beauty test NDCG@10 after prompt-tuning 0.0401 (0.5) vs 0.0373 (0.1)
    threads: int = 2
    device: str = "auto"  # auto (cuda when there is one) | cpu | cuda | cuda:N
    norm_first: bool = True  # pre-LN Transformer blocks; False: post-LN
    bucket: bool | None = None  # batches of similar length (fast); False: random batches; default by loss
    eval_batch: int = 1024
    # pretrain and/or prompt (prompt-tuning, GPT models only: recgpt, or sasrec = prompt-tuning without the
    # user module); None: "pretrain,prompt" for recgpt, "pretrain" for the rest
    stages: str | None = None
    init: str | None = None  # a pre-trained run folder to start from
    extra: dict = field(default_factory=dict)  # stage-specific options (two-stage recall, prompts)

    def resolved_stages(self) -> str:
        if self.stages is not None:
            return self.stages
        return "pretrain,prompt" if self.model == "recgpt" else "pretrain"

    def resolved_loss(self) -> str:
        loss = self.loss or DEFAULT_LOSS.get(self.model, "ce")
        if loss not in ("bce", "sampled-softmax", "ce"):
            raise ValueError(f"--loss must be bce, sampled-softmax or ce, not {loss!r}")
        return loss


def resolve_device(name: str) -> torch.device:
    """--device: "auto" takes the GPU when torch sees one; asking for a missing GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)  # raises on a name torch does not know
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: torch sees no CUDA GPU here (use --device cpu or auto)")
    return dev


def output_head(cfg: TrainConfig) -> str:
    """GPTConfig.output_head of a run: what `--set prompt_head` asks for when the run prompt-tunes, else none."""
    if "prompt" not in cfg.resolved_stages().split(","):
        return "none"
    head = PromptConfig.from_extra(cfg.extra).head  # checked there
    return "none" if head == "tied" else head


def build_model(cfg: TrainConfig, data: SeqData, split: Split):
    if cfg.model not in MODELS:
        raise ValueError(f"--model must be one of {', '.join(MODELS)}, not {cfg.model!r}")
    if cfg.model == "pop":
        # NOTE: "full" counts every interaction, test items included: it leaks the test set, and it is
        # how the published PopRec row on these files was computed (it reproduces it to the digit)
        counts_from = cfg.extra.get("pop_counts", "train")
        if counts_from not in ("train", "full"):
            raise ValueError(f"pop_counts must be train or full, not {counts_from!r}")
        return PopModel(data.n_items, split.train if counts_from == "train" else data.sequences, cfg.max_len)
    user_module = cfg.extra.get("user_module", DEFAULT_USER_MODULE)
    if not isinstance(user_module, bool):
        raise ValueError(f"user_module must be true or false, not {user_module!r}")
    gcfg = GPTConfig(
        n_items=data.n_items, n_users=data.n_users, max_len=cfg.max_len, d_model=cfg.d_model,
        n_layers=cfg.n_layers, n_heads=cfg.n_heads, d_ff=cfg.d_ff, dropout=cfg.dropout,
        user_module=cfg.model == "recgpt" and user_module, user_dropout=cfg.user_dropout, norm_first=cfg.norm_first,
        output_head=output_head(cfg),
    )
    if cfg.model == "bert4rec":
        return BERT4Rec(gcfg, mask_prob=float(cfg.extra.get("bert_mask_prob", BERT4Rec.mask_prob)))
    archs = {"sasrec": GPTRec, "recgpt": GPTRec, "gru4rec": GRU4Rec, "comirec": ComiRecSA}
    return archs[cfg.model](gcfg)


def stage_result(out: Path, stage: str, ends: tuple[str, ...] = ("mix", "soup")) -> Path:
    """A finished stage's weights: its mix with its start, else its soup, else its best epoch (`ends`: which
    of the first two to look for)."""
    for end in ends:
        if (out / f"{stage}.{end}.safetensors").exists():
            return out / f"{stage}.{end}.safetensors"
    return out / f"{stage}.best.safetensors"


def _write_json(path: Path, obj) -> None:
    # NOTE: written whole or not at all (a temporary file renamed over it): a sweep takes a run with a
    # metrics.json as finished, also one that another sweep beside it is just writing, or that a kill cut short
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def run(cfg: TrainConfig, resume: bool = False, log=print) -> dict:
    """Train (or resume) one run and write its folder; returns the final metrics."""
    # NOTE: with two torch threads on the CPU, two runs of one seed drifted apart from the third epoch on
    # (the fourth digit of the loss, then the best epoch); torch's deterministic algorithms make them repeat to
    # the digit (tests/model/test_train.py). warn_only: an op without a deterministic kernel warns, not fails.
    was = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _run(cfg, resume, log)
    finally:
        torch.use_deterministic_algorithms(was[0], warn_only=was[1])


def _run(cfg: TrainConfig, resume: bool, log) -> dict:
    out = Path(cfg.out)
    if resume:
        if not (out / "config.json").exists():
            raise FileNotFoundError(f"--resume: {out}/config.json not found; nothing to resume")
        saved = json.loads((out / "config.json").read_text())
        saved["epochs"] = max(saved["epochs"], cfg.epochs) if cfg.epochs else saved["epochs"]
        if saved["model"] == "recgpt":
            saved["extra"]["user_module"] = saved_user_module(saved)
        saved["extra"].setdefault("pretrain_soup", 0)  # NOTE: a config without the key predates the default
        cfg = TrainConfig(**saved)
    check_extra(cfg.extra)
    if cfg.init and not (Path(cfg.init) / "best.safetensors").exists():
        # NOTE: the run folders committed under docs/results keep config.json and metrics.json, not weights
        raise FileNotFoundError(f"--init {cfg.init}: no best.safetensors there (a finished run folder with its "
                                "weights is needed; train the run again, e.g. into a new --runs folder)")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.time()

    data = load_dataset(cfg.data)
    split = leave_one_out(data)
    cfg.loss = cfg.resolved_loss() if cfg.model != "pop" else None
    for key, val in [*MODEL_DEFAULTS.get(cfg.model, {}).items(), ("dropout", 0.5),
                     *LOSS_DEFAULTS.get(cfg.loss or "ce", {}).items()]:
        if getattr(cfg, key) is None:
            setattr(cfg, key, val)
    cfg.stages = cfg.resolved_stages()
    resolve_user_module(cfg)
    if cfg.model != "pop":
        recall_options(cfg)  # a bad two-stage option fails now, not after the first stage's training
        if "pretrain" in cfg.stages.split(","):
            cfg.extra.setdefault("pretrain_soup", DEFAULT_PRETRAIN_SOUP)  # recorded, so that --resume keeps it
    _write_json(out / "config.json", asdict(cfg))
    data.idmap.save(out / "idmap.json")
    counts = np.bincount(np.concatenate(split.train), minlength=data.n_items + 1)
    _write_json(out / "popularity.json", counts.tolist())
    log(f"data {data.name}: {data.n_users} users, {data.n_items} items; model {cfg.model}, loss {cfg.loss}")

    device = resolve_device(cfg.device)
    model = build_model(cfg, data, split)
    if cfg.model != "pop":
        model.to(device)
        log(f"device: {device}")
    _write_json(out / "model.json", model_spec(model))
    history: list[dict] = []
    wall_before = 0.0  # training time spent before a --resume
    if cfg.model == "pop":
        from safetensors.torch import save_file

        save_file(model.state_dict(), str(out / "best.safetensors"))  # pop's "weights": its counts
    else:
        if cfg.init:
            try:
                # a pre-trained run has no output head; the prompt stage starts it from the item table
                load_checkpoint(Path(cfg.init) / "best.safetensors", model, missing_ok=getattr(model, "head_keys", ()))
            except RuntimeError as e:  # e.g. --set user_module=true over a run trained without one
                raise ValueError(f"--init {cfg.init}: its weights do not fit this {cfg.model} model "
                                 f"(extra {cfg.extra}): {str(e).splitlines()[0]}") from None
            log(f"initialised from {cfg.init}")
        for stage in make_stages(cfg, model, split, torch.from_numpy(counts)):
            rows, before = _fit(cfg, model, split, stage, out, resume, log)
            history += rows
            wall_before += before
            load_checkpoint(stage_result(out, stage.name), model)
        shutil.copyfile(stage_result(out, stage.name), out / "best.safetensors")

    alone = {}
    if history and "," in cfg.stages:  # e.g. pre-training alone of `--stages pretrain,prompt`, for the record
        names = cfg.stages.split(",")
        alone = earlier_stages_alone(cfg, model, split, {n: stage_result(out, n) for n in names[:-1]}
                                     | {names[-1]: out / "best.safetensors"}, log)
    choice = choose_infer_user(cfg, model, split, log)
    if choice:
        _write_json(out / "model.json", model_spec(model))
    result = final_metrics(cfg, model, split) | alone
    if choice:
        # for the record, not for selection: test NDCG@10 with either vector (the choice was made on validation);
        # the chosen vector's is the test block's, only the other one is evaluated here
        chosen = model.cfg.infer_user
        other = "unknown" if chosen == "own" else "own"
        model.cfg.infer_user = other
        test_other = evaluate(model, split.test_hist, split.test_target, split.users, cfg.eval_batch)["NDCG@10"]
        model.cfg.infer_user = chosen
        result["infer_user"] = {**choice, "test_NDCG@10_not_for_selection": {
            chosen: result["test"]["NDCG@10"], other: test_other}}
    soups = {p.name.split(".")[0]: json.loads(p.read_text()) for p in sorted(out.glob("*.soup.json"))}
    last = (cfg.stages or "").split(",")[-1]
    if soups:
        result["soup"] = soups
        if len(soups.get(last, {}).get("epochs", [])) > 1:  # for the record, not for selection
            files = {"soup": f"{last}.soup.safetensors", "best_single_epoch": f"{last}.best.safetensors"}
            result["soup"][last]["test_NDCG@10_not_for_selection"] = test_of(cfg, model, split, out, files)
    mixes = {p.name.split(".")[0]: json.loads(p.read_text()) for p in sorted(out.glob("*.mix.json"))}
    if mixes:
        result["mix_start"] = mixes
        if mixes.get(last, {}).get("alpha", 1.0) < 1.0:  # for the record, not for selection
            files = {"mixed": "best.safetensors", "unmixed": stage_result(out, last, ends=("soup",)).name}
            result["mix_start"][last]["test_NDCG@10_not_for_selection"] = test_of(cfg, model, split, out, files)
    result.update(
        model=cfg.model, data=cfg.data, loss=cfg.loss, seed=cfg.seed, stages=cfg.stages if history else "",
        epochs=len(history), wall_s=round(time.time() - t0 + wall_before, 1),
        best_epoch={r["stage"]: r["epoch"] for r in history if r.get("best")},
        env=run_environment(device),
    )
    _write_json(out / "metrics.json", result)
    if history:
        plot_curves(out / "metrics.jsonl", out / "curves.png", f"{cfg.model} on {cfg.data} ({cfg.loss})")
    log("test: " + "  ".join(f"{k}={v:.4f}" for k, v in result["test"].items()))
    if "test_two_stage" in result:
        log("test two-stage: " + "  ".join(f"{k}={v:.4f}" for k, v in result["test_two_stage"].items()
                                           if isinstance(v, float)))
    return result


def _fit(cfg: TrainConfig, model, split: Split, stage: Stage, out: Path, resume: bool, log
         ) -> tuple[list[dict], float]:
    """Adam epochs of one stage with early stopping; returns its rows and the time spent before a resume."""
    windows, users = training_windows(split.train, cfg.max_len)
    lengths = (windows > 0).sum(1).numpy()
    device = model.item_embeddings().device
    windows, users = windows.to(device), users.to(device)  # (U', L + 1), (U',): small, kept on the device
    if stage.prepare is not None:
        stage.prepare()
    params = [p for p in model.parameters() if p.requires_grad]
    head = getattr(model, "out_table", None)
    if stage.head_lr is not None and head is not None:  # two groups: the output head at its own rate
        params = [{"params": [p for p in params if p is not head]}, {"params": [head], "lr": stage.head_lr}]
    opt = torch.optim.Adam(params, lr=stage.lr, weight_decay=cfg.weight_decay)
    best_path, last_path = out / f"{stage.name}.best.safetensors", out / f"{stage.name}.last.safetensors"
    metrics_path = out / "metrics.jsonl"
    old = [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()] if metrics_path.exists() else []
    earlier = [r for r in old if r["stage"] != stage.name]  # rows of the stages before this one
    start_epoch, best, bad, wall_before, history = 1, -1.0, 0, 0.0, []
    if resume and (out / f"{stage.name}.done").exists():
        log(f"stage {stage.name} already finished")
        rows = [r for r in old if r["stage"] == stage.name]
        return rows, float(rows[-1]["wall_s"]) if rows else 0.0  # its training time counts in the run's wall_s
    if resume and last_path.exists():
        meta = load_checkpoint(last_path, model, opt, restore_rng=True)
        start_epoch, best, bad, wall_before = meta["epoch"] + 1, meta["best"], meta["bad"], meta["wall_s"]
        history = [r for r in old if r["stage"] == stage.name and r["epoch"] <= meta["epoch"]]
        log(f"resuming {stage.name} of {out} after epoch {meta['epoch']} (best {best:.4f})")
    else:
        for end in ("soup", "mix"):
            for stale in (out / f"{stage.name}.{end}.safetensors", out / f"{stage.name}.{end}.json"):
                stale.unlink(missing_ok=True)
        if stage.on_start is not None:
            stage.on_start()
        if stage.seed is not None:
            torch.manual_seed(stage.seed)
        if stage.mix:  # the weights the stage starts from, for its mix at the end
            save_checkpoint(out / f"{stage.name}.start.safetensors", model)
    metrics_path.write_text("".join(json.dumps(r) + "\n" for r in earlier + history))
    t_start = time.time() - wall_before
    bar = tqdm(range(start_epoch, cfg.epochs + 1), desc=f"{cfg.model} {stage.name}", unit="epoch",
               initial=start_epoch - 1, total=cfg.epochs, mininterval=1.0)
    for epoch in bar:
        if bad >= cfg.patience:
            break
        if stage.on_epoch_start is not None:
            stage.on_epoch_start(windows, users)
        model.train()
        total, n = 0.0, 0
        rng = np.random.default_rng([cfg.seed, epoch])
        for idx in length_batches(lengths, cfg.batch_size, rng, bucket=cfg.bucket):
            rows = torch.from_numpy(idx).to(device)
            batch = windows[rows][:, -int(lengths[idx].max()):]  # (B, longest row in this batch)
            loss = stage.loss_fn(batch, users[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + float(loss.detach()), n + 1
        if not math.isfinite(total):
            raise FloatingPointError(f"epoch {epoch}: the loss is {total}; lower --lr")
        scores = stage.validate()
        elapsed = time.time() - t_start
        improved = scores["select"] > best
        row = {"stage": stage.name, "epoch": epoch, "loss": total / max(n, 1), "wall_s": round(elapsed, 1),
               "best": improved, **{k: v for k, v in scores.items() if k != "select"}}
        history.append(row)
        with open(metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if improved:
            best, bad = scores["select"], 0
            save_checkpoint(best_path, model, meta={"epoch": epoch, "select": best})
        else:
            bad += 1
        keep_epoch(out, stage.name, model, epoch, scores["select"], stage.soup)
        save_checkpoint(last_path, model, opt, meta={"epoch": epoch, "best": best, "bad": bad, "wall_s": elapsed})
        bar.set_postfix(loss=f"{row['loss']:.4f}", val=f"{scores['select']:.4f}", best=f"{best:.4f}")
        if cfg.max_minutes and elapsed > cfg.max_minutes * 60:
            log(f"stopping {stage.name} after {elapsed:.0f}s (--max-minutes {cfg.max_minutes})")
            break
    if stage.soup > 1:
        _soup(stage, model, out, log)
    if stage.mix:
        _mix_start(stage, model, out, log)
    (out / f"{stage.name}.done").touch()
    return history, wall_before


def _soup(stage: Stage, model, out: Path, log) -> None:
    """End a stage with the greedy soup of its best epochs: STAGE.soup.safetensors and STAGE.soup.json."""
    load_checkpoint(out / f"{stage.name}.best.safetensors", model)
    info = greedy_soup(out, stage.name, model, lambda: stage.validate()["select"])
    if len(info.get("epochs", [])) > 1:
        save_checkpoint(out / f"{stage.name}.soup.safetensors", model, meta={"soup": info["epochs"]})
    _write_json(out / f"{stage.name}.soup.json", info)
    if info:
        log(f"{stage.name} soup of epochs {info['epochs']}: valid {info['valid_select']:.4f} "
            f"(best single epoch {info['best_single']:.4f})")


def _mix_start(stage: Stage, model, out: Path, log) -> None:
    """End a stage by mixing its result with its start: STAGE.mix.safetensors (when a < 1) and STAGE.mix.json."""
    load_checkpoint(stage_result(out, stage.name), model)
    start = out / f"{stage.name}.start.safetensors"
    info = mix_with_start(start, model, lambda: stage.validate()["select"], stage.mix)
    if info["alpha"] < 1.0:
        save_checkpoint(out / f"{stage.name}.mix.safetensors", model, meta={"alpha": info["alpha"]})
    _write_json(out / f"{stage.name}.mix.json", info)
    start.unlink()
    log(f"{stage.name} mixed with its start: a={info['alpha']} valid {info['valid_select']:.4f} "
        f"(unmixed {info['unmixed']:.4f})")
