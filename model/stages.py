"""What a training run trains and measures: its stages (pre-training, prompt-tuning), their losses and
validation, and the final metrics of the trained model (one-stage, two-stage recall, the inference user vector)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .data import Split
from .evaluate import evaluate
from .losses import NegativeSampler, bce_loss, ce_loss, sampled_softmax_loss
from .prompt import PromptCache, PromptConfig, prompt_loss, start_prompt_stage
from .recall import DEFAULT_SPLITS, evaluate_recall, parse_append
from .user_module import INFER_USER_MARGIN, pick_infer_user

if TYPE_CHECKING:
    from .train import TrainConfig

T = TypeVar("T")

# NOTE: prompt-tuning ends with the greedy soup of its 5 best epochs (model/soup.py says why); 0: best epoch
DEFAULT_PROMPT_SOUP = 5
# NOTE: so does pre-training, of every trained model: a soup is never worse on validation than its best epoch, and
# a baseline without it would lose 2-3% NDCG@10 that RecGPT's prompt stage gets from its own soup (docs/results)
DEFAULT_PRETRAIN_SOUP = 5
# the mixing weights `a` tried when prompt-tuning ends with (1 - a) * its start + a * its result (model/soup.py
# mix_with_start; `--set mix_start=false` turns it off, `--set mix_start=[0.5,0.8]` tries other weights)
MIX_ALPHAS = (0.9, 0.8, 0.7, 0.6, 0.5)
DEFAULT_MIX_START = False
DEFAULT_PROMPT_LR = 5e-4  # prompt-tuning's learning rate (pre-training's is TrainConfig.lr)
# prompt options that validation picked over the global defaults on a named data set, on at least three seeds.
# NOTE: the rule is validation even where test disagrees (Toys' placement "all" is not better on test); the per-seed
# figures behind each entry live in one place, docs/offline.md "Per-data-set defaults": add a new entry's there.
# `recgpt train` fills them in where `--set` leaves the key (apply_data_defaults); config.json records the value used.
DATA_PROMPT_DEFAULTS: dict[str, dict] = {
    "beauty": {"prompt_weight": 3, "prompt_head": "serve", "prompt_head_lr": 2.5e-4}, "sports": {"prompt_weight": 3},
    "toys": {"prompt_placement": "all", "prompt_seen": "prefix", "prompt_head": "serve"}, "yelp": {"prompt_length": 3}}
# every option a run reads off `--set` (TrainConfig.extra). NOTE: a key not here is an error (check_extra): a misspelt
# `--set prompt_placment=all` once trained the default placement without a word
EXTRA_KEYS = frozenset({f"prompt_{name}" for name in PromptConfig.__dataclass_fields__} | {
    "prompt_lr", "prompt_head_lr", "soup", "mix_start", "pretrain_soup", "two_stage_splits", "two_stage_append",
    "infer_user", "infer_user_margin", "user_module", "pop_counts", "bert_mask_prob"})


def check_extra(extra: dict) -> None:
    """A clear error for a `--set` key no part of training reads, naming the nearest known key."""
    unknown = sorted(set(extra) - EXTRA_KEYS)
    if unknown:
        near = {k: difflib.get_close_matches(k, EXTRA_KEYS, n=1) for k in unknown}
        said = ", ".join(f"{k!r}" + (f" (did you mean {near[k][0]}?)" if near[k] else "") for k in unknown)
        raise ValueError(f"unknown --set option {said}; the options are: {', '.join(sorted(EXTRA_KEYS))}")


def mix_alphas(value: bool | float | list) -> tuple[float, ...]:
    """The `mix_start` option as the weights to try: false: none; true: MIX_ALPHAS; a number or a list: those."""
    if value is False or value is None or value == 0:
        return ()
    if value is True:
        return MIX_ALPHAS
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(a, (int, float)) and not isinstance(a, bool) and 0 <= a <= 1 for a in values):
        raise ValueError(f"mix_start takes true, false, or weights in [0, 1], not {value!r}")
    return tuple(float(a) for a in values)


def pretrain_loss(cfg: TrainConfig, model, batch: torch.Tensor, users: torch.Tensor, sampler: NegativeSampler
                  ) -> torch.Tensor:
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


def test_of(cfg: TrainConfig, model, split: Split, out: Path, files: dict[str, str]) -> dict:
    """For the record, not for selection: test NDCG@10 (one-stage and, for GPT models, two-stage at K=10) of
    each weights file of the run folder ({label: file name}); the model holds best.safetensors after."""
    def scores() -> dict:
        one = evaluate(model, split.test_hist, split.test_target, split.users, cfg.eval_batch)["NDCG@10"]
        if getattr(model, "kind", "") != "gpt":
            return {"test": one}
        two = two_stage_k10(cfg, model, split.test_hist, split.test_target, split.users)["NDCG@10"]
        return {"test": one, "test_two_stage": two}

    result = {}
    for label, name in files.items():
        load_checkpoint(out / name, model)
        result[label] = scores()
    load_checkpoint(out / "best.safetensors", model)
    return result


def apply_data_defaults(cfg: TrainConfig) -> dict:
    """A run that prompt-tunes on a named data set takes that set's DATA_PROMPT_DEFAULTS where --set is silent;
    -> the options it took. `recgpt train` applies it (and says so); NOTE: `recgpt experiments` does not: its grids
    (the main table, the ablations, which reuse the main table's run as their k=1 default) compare options against
    the global defaults."""
    taken: dict = {}
    if "prompt" not in cfg.resolved_stages().split(","):
        return taken
    for key, val in DATA_PROMPT_DEFAULTS.get(cfg.data.lower(), {}).items():
        if key in cfg.extra:
            continue
        try:  # NOTE: a default that does not fit what --set chose is left out (prompt_weight with prompt_loss=bce)
            PromptConfig.from_extra({**cfg.extra, key: val})
        except ValueError:
            continue
        cfg.extra[key] = taken[key] = val
    return taken


def recall_options(cfg: TrainConfig) -> tuple[dict[int, tuple[int, int]], str | int]:
    """The (N, M) split per K and what stage 2 appends: a prompt-tuned model appends as many items as
    it was tuned with (its prompt length; the control, prompt length 0, appends 1); otherwise all N."""
    splits = {int(k): tuple(v) for k, v in cfg.extra.get("two_stage_splits", DEFAULT_SPLITS).items()}
    # NOTE: prompt length 0 once meant "append 0 items", and the run crashed at its first prompt-stage validation
    default_append = max(int(cfg.extra.get("prompt_length", 1)), 1) if "prompt" in cfg.stages.split(",") else "all"
    return splits, parse_append(cfg.extra.get("two_stage_append", default_append), "two_stage_append")


def k10_recall(cfg: TrainConfig) -> tuple[tuple[int, int], str | int]:
    """The run's (N, M) split at K=10 (9 + 1 unless set) and what stage 2 appends: what its K=10 figures use."""
    splits, append = recall_options(cfg)
    return splits.get(10, (9, 1)), append


def two_stage_k10(cfg: TrainConfig, model, hist: Sequence[np.ndarray], target: np.ndarray, users: np.ndarray
                  ) -> dict:
    """Metrics of the two-stage recall at K=10, with the run's split and append option."""
    split, append = k10_recall(cfg)
    return evaluate_recall(model, hist, target, users, {10: split}, append=append,
                           batch_size=cfg.eval_batch)


def valid_two_stage(cfg: TrainConfig, model, split: Split) -> dict:
    """Two-stage metrics at K=10 on validation: what prompt-tuning (and the inference user vector after it) is
    selected on."""
    return two_stage_k10(cfg, model, split.valid_hist, split.valid_target, split.users)


def infer_user_rule(cfg: TrainConfig) -> tuple[str, float]:
    """`--set infer_user` (auto | own | unknown) and the margin `pick_infer_user` applies under auto."""
    want = cfg.extra.get("infer_user", "auto")
    if want not in ("auto", "own", "unknown"):
        raise ValueError(f"infer_user must be auto, own or unknown, not {want!r}")
    return want, float(cfg.extra.get("infer_user_margin", INFER_USER_MARGIN))


def score_each_vector(model, score: Callable[[], T]) -> dict[str, T]:
    """score() of a user-module model serving each user's own vector and the unknown-user vector; the model
    serves what it served before after."""
    before, scores = model.cfg.infer_user, {}
    for how in ("own", "unknown"):
        model.cfg.infer_user = how
        scores[how] = score()
    model.cfg.infer_user = before
    return scores


def choose_infer_user(cfg: TrainConfig, model, split: Split, log) -> dict:
    """For a model with a user module: serve each user's own vector or the unknown-user vector, chosen on
    validation (two-stage NDCG@10 after prompt-tuning, else one-stage) by `pick_infer_user`; `--set
    infer_user=own|unknown` forces it. Returns both validation figures and the choice ({} without a module)."""
    if getattr(model, "user_emb", None) is None:
        return {}
    want, margin = infer_user_rule(cfg)
    if "prompt" in cfg.stages.split(","):
        scores = score_each_vector(model, lambda: valid_two_stage(cfg, model, split)["NDCG@10"])
    else:
        scores = score_each_vector(model, lambda: evaluate(model, split.valid_hist, split.valid_target, split.users,
                                                           cfg.eval_batch)["NDCG@10"])
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


def earlier_stages_alone(cfg: TrainConfig, model, split: Split, weights: dict[str, Path], log) -> dict:
    """For the record, not for selection: each stage before a run's last, served alone as a run of the stages up
    to it would be (`--stages pretrain` for pre-training: its own inference user vector, chosen on validation, and
    two-stage recall appending all N). weights: {stage name: its result's file}. -> {"STAGE_valid": ...,
    "STAGE_test": ..., "STAGE_test_two_stage": ..., "STAGE_infer_user": ...}, blocks that `recgpt eval` reads as
    RUN:pretrain_test. The model holds the last file of `weights` after (the run's final weights)."""
    names = cfg.stages.split(",")
    out: dict = {}
    for i, name in enumerate(names[:-1]):
        alone = replace(cfg, stages=",".join(names[: i + 1]))
        load_checkpoint(weights[name], model)
        choice = choose_infer_user(alone, model, split, lambda s, name=name: log(f"{name} alone: {s}"))
        metrics = final_metrics(alone, model, split)
        out.update({f"{name}_{block}": v for block, v in metrics.items()})
        if choice:
            out[f"{name}_infer_user"] = choice
        log(f"{name} alone: test NDCG@10 {metrics['test']['NDCG@10']:.4f}")
    load_checkpoint(weights[names[-1]], model)
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
    soup: int = 0  # > 1: the stage ends with the greedy soup of its `soup` best epochs (model/soup.py)
    # a seed for torch's RNG (dropout) at the stage's start; NOTE: the prompt stage has one, so that
    # `--stages prompt --init RUN` repeats the prompt stage of `--stages pretrain,prompt` to the digit
    seed: int | None = None
    mix: tuple[float, ...] = ()  # not empty: the stage ends by mixing its result with its start (model/soup.py)
    # called once when the stage starts afresh (not on --resume), before its seed is set
    on_start: Callable[[], None] | None = None
    head_lr: float | None = None  # not None: the output head's own learning rate (the rest trains at `lr`)
    # called when the stage begins, afresh or on --resume, before its optimizer is made (what it freezes, its
    # dropout). NOTE: not when the stages are made: freezing there froze the item table of `--stages
    # pretrain,prompt --set prompt_freeze=item_emb` through pre-training too
    prepare: Callable[[], None] | None = None


def make_stages(cfg: TrainConfig, model, split: Split, counts: torch.Tensor) -> list[Stage]:
    sampler = NegativeSampler(model.cfg.n_items, counts, cfg.sampler).to(model.item_embeddings().device)

    def one_stage() -> dict:
        v = evaluate(model, split.valid_hist, split.valid_target, split.users, cfg.eval_batch)
        return {"valid": v, "select": v["NDCG@10"]}

    def as_served(validate: Callable[[], dict]) -> Callable[[], dict]:
        """NOTE: a model with a user module serves the vector `choose_infer_user` picks on validation after training
        (in every converged run so far the unknown-user one); its epochs, soup and mix are selected on that same
        choice, made each time, not on users' own vectors, whose validation peaked epochs earlier (session 58,
        docs/results/history.md). The row keeps the own vectors' blocks and records both scores under "served"."""
        if getattr(model, "user_emb", None) is None:
            return validate
        want, margin = infer_user_rule(cfg)

        def served() -> dict:
            scores = score_each_vector(model, validate)
            select = {how: s["select"] for how, s in scores.items()}
            chosen = pick_infer_user(select, margin) if want == "auto" else want
            return {**scores["own"], "served": {"chosen": chosen, **select}, "select": select[chosen]}
        return served

    stages = []
    names = cfg.stages.split(",")
    if "prompt" in names and cfg.model not in ("recgpt", "sasrec"):
        raise ValueError(f"prompt-tuning needs a GPT model (recgpt or sasrec), not {cfg.model!r}")
    for name in names:
        if name == "pretrain":
            stages.append(Stage("pretrain", lambda b, u: pretrain_loss(cfg, model, b, u, sampler), cfg.lr,
                                as_served(one_stage),
                                soup=int(cfg.extra.get("pretrain_soup", DEFAULT_PRETRAIN_SOUP))))
        elif name == "prompt":
            pcfg = PromptConfig.from_extra(cfg.extra)

            def two_stage() -> dict:
                # NOTE: prompt-tuning is selected on the recall it is for: two-stage NDCG@10 on validation
                v = evaluate(model, split.valid_hist, split.valid_target, split.users, cfg.eval_batch)
                v2 = valid_two_stage(cfg, model, split)
                return {"valid": v, "valid_two_stage": v2, "select": v2["NDCG@10"]}

            # regenerate="epoch": the prompts of the whole epoch come from the model as it was at its start
            cache = PromptCache(pcfg) if pcfg.regenerate == "epoch" and pcfg.length > 0 else None
            refresh = (lambda w, u, cache=cache: cache.refresh(model, w, u, cfg.eval_batch)) if cache else None
            lr = float(cfg.extra.get("prompt_lr", DEFAULT_PROMPT_LR))
            head_lr = cfg.extra.get("prompt_head_lr")  # refused without a head (PromptConfig.from_extra)
            stages.append(Stage("prompt", lambda b, u, pcfg=pcfg, cache=cache: prompt_loss(
                model, b, u, pcfg, sampler, cfg.n_neg, cache), lr, as_served(two_stage), refresh,
                soup=int(cfg.extra.get("soup", DEFAULT_PROMPT_SOUP)), seed=cfg.seed,
                mix=mix_alphas(cfg.extra.get("mix_start", DEFAULT_MIX_START)), on_start=model.reset_output_head,
                head_lr=None if head_lr is None else float(head_lr),
                prepare=lambda pcfg=pcfg: start_prompt_stage(model, pcfg)))
        else:
            raise ValueError(f"--stages takes pretrain and/or prompt, not {name!r}")
    return stages
