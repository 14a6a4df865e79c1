"""Personalized prompt-tuning: the ChatGPT-style fine-tuning stage of RecGPT.

The current model "responds" to a user's history by generating its own most likely next items (no
gradient); these prompt items go into the sequence with segment 1, and the model is trained to
predict the user's real next item (the "feedback") after them, with negative log-likelihood.

Placement:
- "last": the prompt is appended after the last input item only (what stage 2 of the recall does at
  serving time);
- "replace": the last k real input items are replaced by what the model generates from the items
  before them (what the authors' public code does); the targets stay the real next items;
- "all": a prompt follows every real item (the paper's wording: between adjacent items).
Every position's target is the next *real* item, so prompt positions learn "given what I showed
you, what did you really do next".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .gpt import GPTRec
from .losses import NegativeSampler, bce_loss, ce_loss, sampled_softmax_loss, unlikelihood_loss


@dataclass
class PromptConfig:
    length: int = 1  # k generated items per prompt (1..5); 0: no prompts, plain fine-tuning (the control)
    placement: str = "last"  # last | replace | all
    # greedy (top-1, step by step) | topk (the top-k list at once) | sample (step by step, each item drawn from the
    # model's softmax over the items not yet in the row; placement last only)
    generation: str = "greedy"
    freeze: str = "none"  # none | item_emb | all_but_last
    loss: str = "ce"  # ce | sampled-softmax | bce
    # weight of a term pushing down generated items that were not clicked, where they were generated: unlikelihood
    # with loss ce, a sigmoid BCE otherwise (prompt_loss says why)
    hard_negatives: float = 0.0
    regenerate: str = "step"  # step: by the current model at every step | epoch: once an epoch, by the model then
    # loss weight of the positions whose input is a prompt item (segment 1) against 1 for the real positions; the
    # loss is the weighted mean over positions (ce only). NOTE: with placement "last" those positions all predict
    # each user's last training target, so w > 1 also weights the most recent item more
    weight: float = 1.0
    # placement "all" only: which items a prompt after position t may not repeat. row: every item of the window, the
    # ones after t too (the behaviour of every "all" run up to session 43): a prompt before the last position then
    # never holds the real next item, as stage 2 of the recall never re-retrieves what it appended. prefix: the items
    # up to t only, what generating from that prefix alone ("last" on the prefix) would give
    seen: str = "row"
    # what the softmax of a prompt position (segment 1) leaves out, as stage 2 of the recall does when it retrieves
    # after the items it appended: none | shown: the items of that prompt | seen: those and the real items before
    # it. A prompt position whose real next item is one of them (the prompt already held it) has no loss: stage 2
    # could never return it there. ce only, placement last or all
    exclude: str = "none"
    # whether a generated prompt may hold the real next item its positions are trained to predict: allow | avoid.
    # avoid: the generation leaves that item out (the training target is known), so every prompt is a wrong guess,
    # which is what the items stage 2 of the recall appended are whenever the target is still to be found after
    # them. Placement last, or all with seen=prefix ("row" already hides it)
    target: str = "allow"
    # tied: the loss and the generation score against the item embedding table, as ranking does | separate: against
    # an output table of their own (GPTConfig.output_head), a copy of the item table when the stage starts, as the
    # authors' code does; NOTE: ranking keeps the item table, which this stage's loss then trains only as inputs |
    # serve: the same table, and ranking (recall, the service's index) scores against it too
    head: str = "tied"
    # the dropout rate while prompt-tuning (every dropout of the model: embeddings, attention, residual; the user
    # module's keeps its own); None: the pre-trained model's. NOTE: set when the stage starts, not when it is built, so
    # that the pre-training of `--stages pretrain,prompt` keeps its own rate
    dropout: float | None = None
    # label smoothing of the full cross-entropy (loss ce): this share of each position's target mass is spread evenly
    # over all items
    smoothing: float = 0.0

    @classmethod
    def from_extra(cls, extra: dict) -> PromptConfig:
        keys = {f"prompt_{k}": k for k in cls.__dataclass_fields__}
        cfg = cls(**{keys[k]: v for k, v in extra.items() if k in keys})
        if not 0 <= cfg.length <= 5:
            raise ValueError(f"prompt_length must be 0..5, not {cfg.length}")
        if cfg.placement not in ("last", "replace", "all") or cfg.generation not in ("greedy", "topk", "sample"):
            raise ValueError(f"bad prompt placement/generation: {cfg.placement}/{cfg.generation}")
        if cfg.generation == "sample" and cfg.placement != "last":
            raise ValueError(f"prompt_generation=sample acts with placement last only, not {cfg.placement}")
        if cfg.seen not in ("row", "prefix"):
            raise ValueError(f"prompt_seen must be row or prefix, not {cfg.seen!r}")
        # NOTE: so that Toys' default (placement all, seen prefix) leaves a run of `--set prompt_placement=last` without
        # a prompt_seen it never reads, which the options report would take for an option of its own
        if cfg.seen != "row" and cfg.placement != "all":
            raise ValueError(f"prompt_seen={cfg.seen} acts with prompt_placement=all only, not {cfg.placement}")
        if cfg.regenerate not in ("step", "epoch"):
            raise ValueError(f"prompt_regenerate must be step or epoch, not {cfg.regenerate!r}")
        if cfg.exclude not in ("none", "shown", "seen"):
            raise ValueError(f"prompt_exclude must be none, shown or seen, not {cfg.exclude!r}")
        if cfg.exclude != "none" and (cfg.loss != "ce" or cfg.placement == "replace"):
            raise ValueError(f"prompt_exclude={cfg.exclude} acts with prompt_loss=ce and placement last or all only, "
                             f"not {cfg.loss}/{cfg.placement}")
        if cfg.target not in ("allow", "avoid"):
            raise ValueError(f"prompt_target must be allow or avoid, not {cfg.target!r}")
        if cfg.target == "avoid" and not (cfg.placement == "last" or (cfg.placement, cfg.seen) == ("all", "prefix")):
            raise ValueError("prompt_target=avoid acts with placement last, or all with prompt_seen=prefix, not "
                             f"{cfg.placement} (seen {cfg.seen})")
        if cfg.head not in ("tied", "separate", "serve"):
            raise ValueError(f"prompt_head must be tied, separate or serve, not {cfg.head!r}")
        # NOTE: prompt_head_lr is a stage setting, not a field, but whether it fits is decided here with the rest, so
        # that a data set's default rate is left out (apply_data_defaults) where --set prompt_head=tied has no head
        if extra.get("prompt_head_lr") is not None and cfg.head == "tied":
            raise ValueError("prompt_head_lr is the output head's learning rate: it needs prompt_head=separate "
                             "or serve (the tied model has no head apart from the item table)")
        if cfg.dropout is not None and not _is_rate(cfg.dropout):
            raise ValueError(f"prompt_dropout must be a rate in [0, 1), not {cfg.dropout!r}")
        if not _is_rate(cfg.smoothing) or (cfg.smoothing > 0 and (cfg.loss != "ce" or cfg.exclude != "none")):
            raise ValueError(f"prompt_smoothing must be in [0, 1), and above 0 only with prompt_loss=ce and "
                             f"prompt_exclude=none, not {cfg.smoothing!r} ({cfg.loss}, exclude {cfg.exclude})")
        if not cfg.weight > 0 or (cfg.weight != 1 and cfg.loss != "ce"):
            raise ValueError(f"prompt_weight must be > 0, and other than 1 only with prompt_loss=ce, "
                             f"not {cfg.weight!r}")
        return cfg


def _is_rate(x: object) -> bool:
    """A number in [0, 1) (a bool is not one, though Python counts it an int)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < 1


def start_prompt_stage(model: GPTRec, cfg: PromptConfig) -> None:
    """What the prompt stage changes in the model when it starts (afresh or on resume, before its optimizer is
    made): the parameters it leaves alone and its dropout rate."""
    freeze(model, cfg.freeze)
    if cfg.dropout is not None:
        model.set_dropout(float(cfg.dropout))


def freeze(model: GPTRec, how: str) -> None:
    """Which parameters fine-tuning leaves alone."""
    if how == "none":
        return
    if how == "item_emb":
        model.item_emb.weight.requires_grad_(False)
        return
    if how == "all_but_last":
        for p in model.parameters():
            p.requires_grad_(False)
        for p in [*model.blocks[-1].parameters(), *model.ln_f.parameters()]:
            p.requires_grad_(True)
        if model.out_table is not None:  # a separate output head is part of the last layer
            model.out_table.requires_grad_(True)
        return
    raise ValueError(f"prompt_freeze must be none, item_emb or all_but_last, not {how!r}")


def _mask_seen(scores: Tensor, seen: Tensor) -> Tensor:
    """-inf for padding and for items already in the row (seen: (B, L) item ids, 0-padded)."""
    scores = scores.clone()
    scores.scatter_(1, seen, -torch.inf)
    scores[:, 0] = -torch.inf
    return scores


@torch.no_grad()
def generate_last(
    model: GPTRec, inputs: Tensor, users: Tensor, k: int, mode: str = "greedy", avoid: Tensor | None = None
) -> Tensor:
    """(B, k) items the model generates after each row of inputs (B, T), never repeating the row's items nor
    the ones in avoid (B, A) (0-padded). mode (PromptConfig.generation): greedy: one item at a time, each the top
    one; sample: one at a time, each drawn from the softmax (torch's global generator); topk: the top-k at once."""
    was = model.training
    model.eval()
    table = model.output_table()
    h, cache = model.encode_with_cache(inputs, users)
    seen = inputs if avoid is None else torch.cat([inputs, avoid], 1)
    if mode == "topk":
        out = _mask_seen(h @ table.T, seen).topk(k, dim=1).indices
    else:
        picks = []
        for j in range(k):
            s = _mask_seen(h @ table.T, seen)  # (B, V + 1)
            g = torch.multinomial(s.softmax(1), 1) if mode == "sample" else s.argmax(1, keepdim=True)  # (B, 1)
            picks.append(g)
            seen = torch.cat([seen, g], 1)
            if j + 1 < k:
                h, cache = model.extend(cache, g)
        out = torch.cat(picks, 1)
    model.train(was)
    return out.masked_fill((inputs > 0).sum(1, keepdim=True) == 0, 0)


@torch.no_grad()
def generate_everywhere(
    model: GPTRec, inputs: Tensor, users: Tensor, k: int, seen: str = "row", avoid: Tensor | None = None
) -> Tensor:
    """(B, T, k): after each position t, the top-k items predicted from the prefix up to t (one pass).
    seen: "row" keeps every item of the row out of every position's top-k, "prefix" only the items up to t.
    avoid (B, T): one more item each position leaves out (0: none)."""
    was = model.training
    model.eval()
    h = model(inputs, users)  # (B, T, d)
    s = h @ model.output_table().T  # (B, T, V + 1)
    s[..., 0] = -torch.inf
    B, T = inputs.shape
    if seen == "row":
        # NOTE: a superset of each prefix's items: it also hides the items after t, the real next one included
        s.scatter_(2, inputs[:, None, :].expand(-1, T, -1), -torch.inf)
    else:
        pos = torch.arange(T, device=inputs.device)  # (T,)
        first = torch.full((B, s.shape[2]), T, dtype=torch.long, device=inputs.device)
        first.scatter_reduce_(1, inputs, pos.expand(B, -1), reduce="amin")  # (B, V + 1): where each item first comes
        s.masked_fill_(first[:, None, :] <= pos[None, :, None], -torch.inf)  # (B, T, V + 1): seen by position t
    if avoid is not None:
        s.scatter_(2, avoid[..., None], -torch.inf)
    out = s.topk(k, dim=2).indices
    model.train(was)
    return out.masked_fill((inputs == 0)[..., None], 0)


def _left_pack(items: Tensor, *others: Tensor) -> tuple[Tensor, ...]:
    """Move padding (0) to the left of each row, keeping the order of the rest."""
    order = torch.argsort((items > 0).int(), dim=1, stable=True)
    return tuple(x.gather(1, order) for x in (items, *others))


def generate_prompts(model: GPTRec, inputs: Tensor, users: Tensor, cfg: PromptConfig, targets: Tensor) -> Tensor:
    """The prompt items of windows' inputs (B, T) with targets (B, T) (each position's real next item): (B, k) for
    "last" and "replace", (B, T, k) for "all"."""
    k = cfg.length
    avoid = cfg.target == "avoid"
    if cfg.placement == "last":
        return generate_last(model, inputs, users, k, cfg.generation, avoid=targets[:, -1:] if avoid else None)
    if cfg.placement == "replace":
        prefix = torch.cat([torch.zeros_like(inputs[:, -k:]), inputs[:, :-k]], 1)  # (B, T): all but the last k
        return generate_last(model, prefix, users, k, cfg.generation)
    return generate_everywhere(model, inputs, users, k, cfg.seen, avoid=targets if avoid else None)


class PromptCache:
    """Prompts generated once an epoch (`regenerate="epoch"`) for every training window, looked up by user
    (each user has one window). Rows are generated from full-width windows: a batch cut to its longest
    row gives the same items (positions count from the first real item, padding is masked)."""

    def __init__(self, cfg: PromptConfig) -> None:
        self.cfg = cfg
        self.row_of: Tensor | None = None  # (n_users + 1,) user -> row of `gen`
        self.gen: Tensor | None = None  # (U', k) or (U', T, k)

    def refresh(self, model: GPTRec, windows: Tensor, users: Tensor, batch_size: int = 1024) -> None:
        inputs, targets = windows[:, :-1], windows[:, 1:]
        self.gen = torch.cat([generate_prompts(model, inputs[s:s + batch_size], users[s:s + batch_size], self.cfg,
                                               targets[s:s + batch_size])
                              for s in range(0, len(inputs), batch_size)])
        self.row_of = torch.full((int(users.max()) + 1,), -1, dtype=torch.long, device=users.device)
        self.row_of[users] = torch.arange(len(users), device=users.device)

    def lookup(self, users: Tensor, width: int) -> Tensor:
        """The cached prompts of a batch whose inputs are `width` wide."""
        assert self.gen is not None and self.row_of is not None, "PromptCache.refresh first"
        gen = self.gen[self.row_of[users]]
        return gen[:, -width:] if self.cfg.placement == "all" else gen


def expand_with_prompts(
    model: GPTRec, batch: Tensor, users: Tensor, cfg: PromptConfig, max_width: int, gen: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Windows (B, L + 1) -> expanded inputs, segments, targets (B, W) and the generated items.
    gen: prompts generated beforehand (PromptCache); None: the current model generates them now."""
    inputs, targets = batch[:, :-1], batch[:, 1:]
    k = cfg.length
    if k == 0:  # the control: the same fine-tuning (lr, loss, selection) without any prompt item
        return inputs, torch.zeros_like(inputs), targets, inputs[:, :0]
    if gen is None:
        gen = generate_prompts(model, inputs, users, cfg, targets)
    if cfg.placement == "last":  # gen: (B, k)
        last_target = targets[:, -1:]
        x = torch.cat([inputs, gen], 1)
        seg = torch.cat([torch.zeros_like(inputs), torch.ones_like(gen)], 1)
        # every position predicts the next REAL item: the prompt positions too predict targets[:, -1]
        y = torch.cat([targets, last_target.expand(-1, k)], 1)
        gen_for_neg = gen
    elif cfg.placement == "replace":  # gen: (B, k), generated from all but the last k inputs
        # NOTE: only real items are replaced, and only by a real generation (a row whose prefix is empty
        # generates 0): a replaced item never leaves a hole of padding inside the sequence
        rep = (inputs[:, -k:] > 0) & (gen > 0)  # (B, k)
        x = torch.cat([inputs[:, :-k], torch.where(rep, gen, inputs[:, -k:])], 1)
        seg = torch.cat([torch.zeros_like(inputs[:, :-k]), rep.long()], 1)
        y = targets
        gen_for_neg = gen
    else:  # gen: (B, T, k)
        B, T = inputs.shape
        x = torch.cat([inputs[..., None], gen], 2).reshape(B, T * (k + 1))
        seg = torch.cat([torch.zeros_like(inputs)[..., None], torch.ones_like(gen)], 2).reshape(B, -1)
        y = targets[..., None].expand(-1, -1, k + 1).reshape(B, -1)
        y = y.masked_fill(x == 0, 0)
        x, seg, y = _left_pack(x, seg, y)
        x, seg, y = x[:, -max_width:], seg[:, -max_width:], y[:, -max_width:]
        gen_for_neg = gen[:, -1, :]
    return x, seg, y, gen_for_neg


def excluded_items(x: Tensor, seg: Tensor, how: str) -> Tensor:
    """(B, W, W) item ids (0: none) each position of expanded inputs x (B, W) leaves out of its softmax: nothing at
    a real position (segment 0); at a prompt position, the items of its prompt (the run of segment-1 items it is
    part of) and, with how="seen", the real items before it as well."""
    real = seg == 0  # (B, W)
    group = real.long().cumsum(1)  # (B, W): a prompt shares its group with the real item before it
    W = x.shape[1]
    same = (group[:, :, None] == group[:, None, :]) & ~real[:, None, :]  # (B, W, W): [b, i, j] j in i's prompt
    if how == "seen":
        before = torch.ones(W, W, dtype=torch.bool, device=x.device).tril()  # (W, W): j <= i
        same = same | (real[:, None, :] & before)
    same = same & ~real[:, :, None]  # real positions leave nothing out
    return torch.where(same, x[:, None, :], 0)


def prompt_loss(
    model: GPTRec, batch: Tensor, users: Tensor, cfg: PromptConfig, sampler: NegativeSampler, n_neg: int,
    cache: PromptCache | None = None,
) -> Tensor:
    pre = cache.lookup(users, batch.shape[1] - 1) if cache is not None else None
    x, seg, y, gen = expand_with_prompts(model, batch, users, cfg, model.cfg.max_len + model.cfg.max_extend, pre)
    h = model(x, users, seg)  # (B, W, d)
    sel = y > 0
    hs, ts = h[sel], y[sel]
    table = model.output_table()
    if cfg.loss == "ce":
        w = None if cfg.weight == 1 else torch.where(seg[sel] == 1, cfg.weight, 1.0)  # (P,)
        ex = None if cfg.exclude == "none" else excluded_items(x, seg, cfg.exclude)[sel]  # (P, W)
        loss = ce_loss(hs, ts, table, weights=w, exclude=ex, smoothing=cfg.smoothing)
    elif cfg.loss == "bce":
        row = torch.arange(len(x), device=x.device)[:, None].expand_as(y)[sel]
        loss = bce_loss(hs, ts, table, sampler.draw_excluding((len(ts), max(1, n_neg)), batch[row]))
    else:
        loss = sampled_softmax_loss(hs, ts, table, sampler.draw((max(1, n_neg) * 256,)), sampler.log_q)
    if cfg.hard_negatives > 0 and gen.shape[1] > 0:
        # shown-but-not-clicked: the generated items that are not the real next item are pushed down where they
        # were generated, at the last real position before the prompt (index width - k - 1 in every placement), whose
        # target is that real next item. NOTE: not at the prompt positions, where the generated item is the input;
        # and with the full softmax (loss ce) as unlikelihood, -log(1 - p(item)): a sigmoid BCE term on logits
        # trained by cross-entropy (large for the model's own top item) tore the pre-trained model apart on Beauty
        # (session 17: valid NDCG@10 0.0704 -> 0.0622 after one epoch at the prompt position, weight 1; 0.0583 at
        # the generating position, weight 0.5)
        at = x.shape[1] - cfg.length - 1
        h_at, t_at = h[:, at], y[:, at]  # (B, d), (B,)
        shown = (gen != t_at[:, None]) & (gen > 0) & (t_at[:, None] > 0)  # (B, k)
        if shown.any():
            rows, items = shown.nonzero()[:, 0], gen[shown]
            if cfg.loss == "ce":
                term = unlikelihood_loss(h_at[rows], items, table)
            else:
                s = (h_at[rows] * table[items]).sum(-1)
                term = F.binary_cross_entropy_with_logits(s, torch.zeros_like(s))
            loss = loss + cfg.hard_negatives * term
    return loss
