"""Training: one loop for every trainable model, early stopping on validation NDCG@10, a run folder.

Run folder: config.json (resolved), idmap.json, popularity.json, metrics.jsonl (one line an epoch),
last.safetensors (model + Adam + RNG, for --resume), best.safetensors, curves.png, metrics.json.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .baselines import BERT4Rec, GRU4Rec, PopModel
from .checkpoint import load_checkpoint, save_checkpoint
from .data import SeqData, Split, leave_one_out, load_dataset
from .evaluate import evaluate, pad_left
from .gpt import GPTConfig, GPTRec
from .io import model_spec
from .losses import NegativeSampler, bce_loss, ce_loss, sampled_softmax_loss
from .plots import plot_curves
from .recall import DEFAULT_SPLITS, evaluate_recall

MODELS = ("pop", "gru4rec", "sasrec", "bert4rec", "recgpt")
DEFAULT_LOSS = {"sasrec": "bce", "recgpt": "bce", "gru4rec": "ce", "bert4rec": "ce"}


@dataclass
class TrainConfig:
    data: str = "synthetic"
    model: str = "sasrec"
    out: str = "runs/default"
    loss: str | None = None  # bce | sampled-softmax | ce; None: the model's default
    n_neg: int = 1  # BCE negatives per position; sampled-softmax: negatives per batch (x256)
    sampler: str = "uniform"  # uniform | pop
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    epochs: int = 200
    patience: int = 10  # epochs without a better validation NDCG@10
    max_minutes: float | None = None  # stop (keeping the best epoch) after this much training time
    seed: int = 1
    max_len: int = 50
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    d_ff: int = 256
    dropout: float = 0.5
    user_dropout: float = 0.1
    threads: int = 2
    eval_batch: int = 1024
    extra: dict = field(default_factory=dict)  # stage-specific options (two-stage recall, prompts)

    def resolved_loss(self) -> str:
        loss = self.loss or DEFAULT_LOSS.get(self.model, "ce")
        if loss not in ("bce", "sampled-softmax", "ce"):
            raise ValueError(f"--loss must be bce, sampled-softmax or ce, not {loss!r}")
        return loss


def build_model(cfg: TrainConfig, data: SeqData, split: Split):
    if cfg.model not in MODELS:
        raise ValueError(f"--model must be one of {', '.join(MODELS)}, not {cfg.model!r}")
    if cfg.model == "pop":
        return PopModel(data.n_items, split.train, cfg.max_len)
    gcfg = GPTConfig(
        n_items=data.n_items, n_users=data.n_users, max_len=cfg.max_len, d_model=cfg.d_model,
        n_layers=cfg.n_layers, n_heads=cfg.n_heads, d_ff=cfg.d_ff, dropout=cfg.dropout,
        user_module=cfg.model == "recgpt", user_dropout=cfg.user_dropout,
    )
    return {"sasrec": GPTRec, "recgpt": GPTRec, "gru4rec": GRU4Rec, "bert4rec": BERT4Rec}[cfg.model](gcfg)


def training_windows(train: list[np.ndarray], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each user's last max_len + 1 training items, left-padded: (U', max_len + 1), and their user ids.
    Users with a single training item have no (input, target) pair and are left out."""
    keep = np.array([len(s) >= 2 for s in train])
    windows = pad_left([s for s, k in zip(train, keep, strict=True) if k], max_len + 1, width=max_len + 1)
    users = torch.from_numpy(np.flatnonzero(keep) + 1)
    return windows, users


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of rows with similar lengths, in random order.

    NOTE: most rows are short (Beauty: 7 training items on average, window 51), so a batch cut to its
    own longest row computes about 7x fewer positions than full windows; on 2 CPU cores that, not
    the matmuls, decides the epoch time (dropout's RNG alone is half of a full-width step)."""
    order = np.lexsort((rng.random(len(lengths)), lengths))  # by length, ties in random order
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def _loss(cfg: TrainConfig, model, batch: torch.Tensor, users: torch.Tensor, sampler: NegativeSampler) -> torch.Tensor:
    """Loss of one batch of windows (B, L + 1)."""
    loss_name = cfg.resolved_loss()
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
        row = torch.arange(len(batch))[:, None].expand_as(targets)[sel]  # (P,) which user each position is
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
        cfg = TrainConfig(**saved)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.time()

    data = load_dataset(cfg.data)
    split = leave_one_out(data)
    cfg.loss = cfg.resolved_loss() if cfg.model != "pop" else None
    _write_json(out / "config.json", asdict(cfg))
    data.idmap.save(out / "idmap.json")
    counts = np.bincount(np.concatenate(split.train), minlength=data.n_items + 1)
    _write_json(out / "popularity.json", counts.tolist())
    log(f"data {data.name}: {data.n_users} users, {data.n_items} items; model {cfg.model}, loss {cfg.loss}")

    model = build_model(cfg, data, split)
    _write_json(out / "model.json", model_spec(model))
    history: list[dict] = []
    wall_before = 0.0  # training time spent before a --resume
    if cfg.model != "pop":
        history, wall_before = _fit(cfg, model, split, torch.from_numpy(counts), out, resume, log)
        load_checkpoint(out / "best.safetensors", model)
    else:
        from safetensors.torch import save_file

        save_file(model.state_dict(), str(out / "best.safetensors"))  # pop's "weights": its counts

    result = final_metrics(cfg, model, split)
    result.update(
        model=cfg.model, data=cfg.data, loss=cfg.loss, seed=cfg.seed, epochs=len(history),
        best_epoch=max(history, key=lambda r: r["valid"]["NDCG@10"])["epoch"] if history else 0,
        wall_s=round(time.time() - t0 + wall_before, 1),
    )
    _write_json(out / "metrics.json", result)
    if history:
        plot_curves(out / "metrics.jsonl", out / "curves.png", f"{cfg.model} on {cfg.data} ({cfg.loss})")
    log("test: " + "  ".join(f"{k}={v:.4f}" for k, v in result["test"].items()))
    return result


def final_metrics(cfg: TrainConfig, model, split: Split) -> dict:
    """Validation and test metrics of the best model (extended by the recall stages when present)."""
    valid = evaluate(model, split.valid_hist, split.valid_target, split.users, cfg.eval_batch)
    test = evaluate(model, split.test_hist, split.test_target, split.users, cfg.eval_batch)
    out = {"valid": valid, "test": test}
    if getattr(model, "kind", "") == "gpt":  # the recall the service runs: two stages, each K its own split
        splits = {int(k): tuple(v) for k, v in cfg.extra.get("two_stage_splits", DEFAULT_SPLITS).items()}
        append = cfg.extra.get("two_stage_append", "all")
        out["test_two_stage"] = evaluate_recall(model, split.test_hist, split.test_target, split.users,
                                                splits, append=append, batch_size=cfg.eval_batch)
    return out


def _fit(cfg: TrainConfig, model, split: Split, counts: torch.Tensor, out: Path, resume: bool, log) -> tuple[list[dict], float]:
    """Adam epochs with early stopping; returns the per-epoch rows and the time spent before a resume."""
    windows, users = training_windows(split.train, cfg.max_len)
    lengths = (windows > 0).sum(1).numpy()
    sampler = NegativeSampler(model.cfg.n_items, counts, cfg.sampler)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: list[dict] = []
    start_epoch, best, bad, wall_before = 1, -1.0, 0, 0.0
    metrics_path = out / "metrics.jsonl"
    if resume and (out / "last.safetensors").exists():
        meta = load_checkpoint(out / "last.safetensors", model, opt, restore_rng=True)
        start_epoch, best, bad, wall_before = meta["epoch"] + 1, meta["best"], meta["bad"], meta["wall_s"]
        lines = metrics_path.read_text().splitlines() if metrics_path.exists() else []
        history = [json.loads(x) for x in lines if x.strip() and json.loads(x)["epoch"] <= meta["epoch"]]
        log(f"resuming {out} after epoch {meta['epoch']} (best valid NDCG@10 {best:.4f})")
    metrics_path.write_text("".join(json.dumps(r) + "\n" for r in history))
    t_start = time.time() - wall_before
    bar = tqdm(range(start_epoch, cfg.epochs + 1), desc=f"{cfg.model}", unit="epoch", initial=start_epoch - 1,
               total=cfg.epochs, mininterval=1.0)
    for epoch in bar:
        if bad >= cfg.patience:
            break
        model.train()
        total, n = 0.0, 0
        for idx in length_batches(lengths, cfg.batch_size, np.random.default_rng([cfg.seed, epoch])):
            batch = windows[torch.from_numpy(idx)]
            batch = batch[:, -int(lengths[idx].max()):]  # (B, longest row in this batch)
            loss = _loss(cfg, model, batch, users[torch.from_numpy(idx)], sampler)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + float(loss.detach()), n + 1
        valid = evaluate(model, split.valid_hist, split.valid_target, split.users, cfg.eval_batch)
        if not math.isfinite(total):
            raise FloatingPointError(f"epoch {epoch}: the loss is {total}; lower --lr")
        elapsed = time.time() - t_start
        row = {"epoch": epoch, "loss": total / max(n, 1), "valid": valid, "wall_s": round(elapsed, 1)}
        history.append(row)
        with open(metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if valid["NDCG@10"] > best:
            best, bad = valid["NDCG@10"], 0
            save_checkpoint(out / "best.safetensors", model, meta={"epoch": epoch, "valid": valid})
        else:
            bad += 1
        save_checkpoint(out / "last.safetensors", model, opt,
                        meta={"epoch": epoch, "best": best, "bad": bad, "wall_s": elapsed})
        bar.set_postfix(loss=f"{row['loss']:.4f}", ndcg10=f"{valid['NDCG@10']:.4f}", best=f"{best:.4f}")
        if cfg.max_minutes and elapsed > cfg.max_minutes * 60:
            log(f"stopping after {elapsed:.0f}s (--max-minutes {cfg.max_minutes})")
            break
    return history, wall_before
