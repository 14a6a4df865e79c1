"""Prompt expansion: where the generated items go, with which segment, and what each position predicts."""

import pytest
import torch

from model.gpt import GPTConfig, GPTRec
from model.prompt import PromptConfig, expand_with_prompts, generate_last


def _model() -> GPTRec:
    torch.manual_seed(0)
    return GPTRec(GPTConfig(n_items=30, n_users=4, d_model=16, n_heads=2, d_ff=32, dropout=0.0)).eval()


# windows (B, L + 1), left-padded: row 0 has 5 items, row 1 has 2
BATCH = torch.tensor([[0, 0, 0, 5, 6, 7, 8, 9], [0, 0, 0, 0, 0, 0, 11, 12]])
USERS = torch.tensor([1, 2])


def test_last_appends_the_prompt_and_every_prompt_position_predicts_the_last_target():
    m = _model()
    x, seg, y, gen = expand_with_prompts(m, BATCH, USERS, PromptConfig(length=2), max_width=100)
    inputs, targets = BATCH[:, :-1], BATCH[:, 1:]
    assert torch.equal(x[:, :-2], inputs) and torch.equal(x[:, -2:], gen)
    assert seg[:, :-2].sum() == 0 and seg[:, -2:].eq(1).all()
    assert torch.equal(y[:, :-2], targets) and torch.equal(y[:, -2:], targets[:, -1:].expand(-1, 2))
    assert torch.equal(gen, generate_last(m, inputs, USERS, 2, mode="greedy"))
    for r in range(2):  # generated items never repeat the row's own inputs
        assert not set(gen[r].tolist()) & set(inputs[r].tolist())


def test_replace_swaps_the_last_real_items_for_what_the_prefix_generates():
    m = _model()
    x, seg, y, gen = expand_with_prompts(m, BATCH, USERS, PromptConfig(length=1, placement="replace"), 100)
    inputs, targets = BATCH[:, :-1], BATCH[:, 1:]
    assert torch.equal(y, targets)  # targets stay the real next items
    assert torch.equal(x[:, :-1], inputs[:, :-1])
    # row 0's last input (8) is replaced by what its prefix (5, 6, 7) generates; row 1 has no prefix: kept
    assert torch.equal(seg[:, -1], torch.tensor([1, 0])) and seg[:, :-1].sum() == 0
    want = generate_last(m, torch.tensor([[0, 0, 0, 0, 5, 6, 7]]), USERS[:1], 1, mode="greedy")
    assert x[0, -1] == want[0, 0] and torch.equal(x[1], inputs[1])
    # k = 2: both of the last two items are replaced, by the greedy continuation of (1, 2)
    x2, seg2, y2, _ = expand_with_prompts(m, torch.tensor([[1, 2, 3, 4, 5]]), USERS[:1],
                                          PromptConfig(length=2, placement="replace"), 100)
    want2 = generate_last(m, torch.tensor([[0, 0, 1, 2]]), USERS[:1], 2, mode="greedy")
    assert torch.equal(x2[0, 2:], want2[0]) and seg2.tolist() == [[0, 0, 1, 1]] and y2.tolist() == [[2, 3, 4, 5]]


def test_length_zero_is_plain_fine_tuning():
    x, seg, y, gen = expand_with_prompts(_model(), BATCH, USERS, PromptConfig(length=0), 100)
    assert torch.equal(x, BATCH[:, :-1]) and torch.equal(y, BATCH[:, 1:]) and seg.sum() == 0 and gen.shape == (2, 0)


def test_prompts_generated_once_an_epoch_equal_those_generated_at_the_step():
    from model.prompt import PromptCache

    m = _model()
    # the batch is cut to its longest row (as training does); the cache was filled from full-width windows
    windows = torch.cat([torch.zeros(2, 6, dtype=torch.long), BATCH], 1)  # (2, 14)
    cut = windows[:, -6:]  # row 0's 5 items (+ target) fit in 6 columns
    for placement, k in [("last", 2), ("replace", 1), ("all", 2)]:
        cfg = PromptConfig(length=k, placement=placement, regenerate="epoch")
        cache = PromptCache(cfg)
        cache.refresh(m, windows, USERS, batch_size=1)  # one window a generation batch
        now = expand_with_prompts(m, cut, USERS, cfg, 100)
        cached = expand_with_prompts(m, cut, USERS, cfg, 100, gen=cache.lookup(USERS, cut.shape[1] - 1))
        for a, b in zip(now, cached, strict=True):
            assert torch.equal(a, b), placement
        # looked up by user, in any order
        assert torch.equal(cache.lookup(USERS.flip(0), 5), cache.lookup(USERS, 5).flip(0))


def test_regenerate_epoch_generates_once_an_epoch_not_at_every_step(monkeypatch, tmp_path):
    import model.prompt as prompt
    from model.train import TrainConfig, run

    calls = []
    real = prompt.generate_prompts
    monkeypatch.setattr(prompt, "generate_prompts", lambda m, x, u, c, t: calls.append(len(x)) or real(m, x, u, c, t))
    cfg = TrainConfig(model="recgpt", loss="ce", out=str(tmp_path), stages="pretrain,prompt", epochs=2,
                      patience=5, d_model=16, d_ff=32, batch_size=256, eval_batch=4096,
                      extra={"prompt_regenerate": "epoch"})
    run(cfg, log=lambda *_: None)
    assert calls == [2000, 2000]  # the synthetic set's 2000 training windows, once in each prompt epoch
    with pytest.raises(ValueError, match="prompt_regenerate"):
        PromptConfig.from_extra({"prompt_regenerate": "never"})


def test_prompt_weight_is_the_weighted_mean_of_the_positions_cross_entropy():
    import torch.nn.functional as F

    from model.losses import NegativeSampler
    from model.prompt import prompt_loss

    m = _model()
    sampler = NegativeSampler(30)
    x, seg, y, _ = expand_with_prompts(m, BATCH, USERS, PromptConfig(length=2), 100)
    sel = y > 0
    per = F.cross_entropy(m(x, USERS, seg)[sel] @ m.item_embeddings()[1:].T, y[sel] - 1, reduction="none")
    on_prompt = seg[sel] == 1  # 2 rows x 2 prompt positions; 5 + 2 real (each row's first item has one too)
    assert int(on_prompt.sum()) == 4 and len(per) == 11
    with torch.no_grad():
        for w in (1.0, 3.0, 0.5):
            got = prompt_loss(m, BATCH, USERS, PromptConfig(length=2, weight=w), sampler, 1)
            want = (per[~on_prompt].sum() + w * per[on_prompt].sum()) / (7 + 4 * w)
            assert torch.allclose(got, want, atol=1e-6), w
    for bad in ({"prompt_weight": 0}, {"prompt_weight": 2, "prompt_loss": "bce"}):
        with pytest.raises(ValueError, match="prompt_weight"):
            PromptConfig.from_extra(bad)


@pytest.mark.parametrize("placement", ["last", "replace", "all"])
def test_hard_negatives_push_down_the_shown_items_where_they_were_generated(placement):
    import torch.nn.functional as F

    from model.losses import NegativeSampler
    from model.prompt import prompt_loss

    m = _model()
    sampler = NegativeSampler(30)
    cfg = PromptConfig(length=2, placement=placement)
    x, seg, y, gen = expand_with_prompts(m, BATCH, USERS, cfg, 100)
    with torch.no_grad():
        plain = prompt_loss(m, BATCH, USERS, cfg, sampler, 1)
        got = prompt_loss(m, BATCH, USERS, PromptConfig(length=2, placement=placement, hard_negatives=0.5), sampler, 1)
        h = m(x, USERS, seg)
        at = x.shape[1] - 3  # the last real position before the 2 prompt items: it generated them
        if placement != "replace":  # the prompt items follow that position
            assert (seg[:, at] == 0).all() and (seg[:, at + 1:] == 1).all()
        p = torch.softmax(h[:, at] @ m.item_embeddings()[1:].T, -1)  # (B, n_items): item c + 1 in column c
        shown = [(r, g) for r in range(2) for g in gen[r].tolist()  # shown there and not the real next item
                 if g > 0 and g != int(y[r, at]) and int(y[r, at]) > 0]
        assert shown, "the hand-made rows show at least one item that was not clicked"
        want = plain + 0.5 * torch.stack([-torch.log(1 - p[r, g - 1]) for r, g in shown]).mean()  # unlikelihood
        assert torch.allclose(got, want, atol=1e-6)
        # with the BCE fine-tuning loss, the term is a sigmoid BCE on the same items' scores (the same draws)
        bce = dict(length=2, placement=placement, loss="bce")
        torch.manual_seed(0)
        plain = prompt_loss(m, BATCH, USERS, PromptConfig(**bce), sampler, 1)
        torch.manual_seed(0)
        got = prompt_loss(m, BATCH, USERS, PromptConfig(**bce, hard_negatives=0.5), sampler, 1)
        s = torch.stack([h[r, at] @ m.item_embeddings()[g] for r, g in shown])
        assert torch.allclose(got, plain + 0.5 * F.binary_cross_entropy_with_logits(s, torch.zeros_like(s)), atol=1e-6)
    if placement == "last":  # the position's target is the real next item: the last target
        assert torch.equal(y[:, at], BATCH[:, -1])


def test_placement_all_prefix_generates_at_each_position_what_that_prefix_alone_generates():
    from model.prompt import generate_everywhere

    m = _model()
    inputs = torch.tensor([[0, 0, 3, 5, 3, 6, 7], [0, 0, 0, 0, 0, 11, 12]])  # row 0 repeats item 3
    # make row 0's later item 7 the top score after its first item, so that the two masks must differ there
    table = m.item_embeddings().detach().clone()
    table[7] = 100 * m(inputs, USERS)[0, 2].detach()
    m.output_table = lambda: table  # what generation scores against; the forward pass reads item_emb
    exact = generate_everywhere(m, inputs, USERS, 3, seen="prefix")  # (B, T, 3)
    row = generate_everywhere(m, inputs, USERS, 3, seen="row")
    T = inputs.shape[1]
    for b in range(2):
        for t in range(T):
            if inputs[b, t] == 0:
                assert exact[b, t].eq(0).all() and row[b, t].eq(0).all()
                continue
            prefix = torch.cat([torch.zeros(1, T - 1 - t, dtype=torch.long), inputs[b:b + 1, :t + 1]], 1)
            want = generate_last(m, prefix, USERS[b:b + 1], 3, mode="topk")[0]
            assert torch.equal(exact[b, t], want)
            # "row" keeps every item of the row out, the later ones too; at the last position the two agree
            assert not set(row[b, t].tolist()) & set(inputs[b].tolist())
        assert torch.equal(exact[b, -1], row[b, -1])
    assert exact[0, 2, 0] == 7 and 7 not in row[0, 2].tolist()
    with pytest.raises(ValueError, match="prompt_seen"):
        PromptConfig.from_extra({"prompt_seen": "future"})
    with pytest.raises(ValueError, match="prompt_placement=all only"):
        PromptConfig.from_extra({"prompt_seen": "prefix", "prompt_placement": "last"})


def test_excluded_items_are_each_prompt_and_with_seen_the_real_items_before_it():
    from model.prompt import excluded_items

    # row 0: placement "last", a prompt of 2 (20, 21) after 5, 6; row 1: placement "all", a prompt of 1 after each item
    x = torch.tensor([[0, 0, 5, 6, 20, 21], [5, 20, 6, 21, 7, 22]])
    seg = torch.tensor([[0, 0, 0, 0, 1, 1], [0, 1, 0, 1, 0, 1]])
    want = {"shown": [[set(), set(), set(), set(), {20, 21}, {20, 21}], [set(), {20}, set(), {21}, set(), {22}]],
            "seen": [[set(), set(), set(), set(), {5, 6, 20, 21}, {5, 6, 20, 21}],
                     [set(), {5, 20}, set(), {5, 6, 21}, set(), {5, 6, 7, 22}]]}
    for how, rows in want.items():
        ex = excluded_items(x, seg, how)  # (2, 6, 6)
        got = [[set(ex[b, i].tolist()) - {0} for i in range(6)] for b in range(2)]
        assert got == rows, how


@pytest.mark.parametrize("how", ["shown", "seen"])
def test_prompt_exclude_leaves_the_shown_items_out_of_the_prompt_positions_softmax(monkeypatch, how):
    import torch.nn.functional as F

    import model.prompt as prompt
    from model.losses import NegativeSampler

    m = _model()
    # row 0's prompt holds its real next item (9): its prompt positions have no loss; row 1's (3, 4) does not
    gen = torch.tensor([[9, 3], [3, 4]])
    monkeypatch.setattr(prompt, "generate_prompts", lambda *a: gen)
    cfg = PromptConfig(length=2, exclude=how, weight=3.0)
    x, seg, y, _ = expand_with_prompts(m, BATCH, USERS, cfg, 100)
    with torch.no_grad():
        logits = m(x, USERS, seg) @ m.item_embeddings()[1:].T  # (B, W, n_items)
        terms, weights = [], []
        for b in range(2):
            for i in range(x.shape[1]):
                if y[b, i] == 0:
                    continue
                if seg[b, i] == 1:
                    if b == 0:
                        continue  # the prompt already showed the target
                    out = {3, 4} | ({11} if how == "seen" else set())
                    row = logits[b, i].clone()
                    row[[o - 1 for o in out]] = -torch.inf
                else:
                    row = logits[b, i]
                terms.append(F.cross_entropy(row[None], y[b, i][None] - 1))
                weights.append(3.0 if seg[b, i] == 1 else 1.0)
        want = (torch.stack(terms) * torch.tensor(weights)).sum() / sum(weights)
        got = prompt.prompt_loss(m, BATCH, USERS, cfg, NegativeSampler(30), 1)
        plain = prompt.prompt_loss(m, BATCH, USERS, PromptConfig(length=2, weight=3.0), NegativeSampler(30), 1)
    assert len(terms) == 9 and torch.allclose(got, want, atol=1e-6) and not torch.allclose(got, plain)
    for bad in ({"prompt_exclude": "all"}, {"prompt_exclude": "shown", "prompt_loss": "bce"},
                {"prompt_exclude": "seen", "prompt_placement": "replace"}):
        with pytest.raises(ValueError, match="prompt_exclude"):
            PromptConfig.from_extra(bad)


def test_prompt_hits_counts_the_windows_whose_prompt_holds_their_last_item(monkeypatch):
    import bench.prompt_hits as hits

    windows = torch.tensor([[0, 1, 5], [2, 3, 7], [0, 4, 9]])
    # what the model "generates" after each row's inputs: row 0 names its target, row 1 does not, row 2 in second place
    prompts = {(0, 1): [5, 8], (2, 3): [1, 6], (0, 4): [3, 9]}
    seen = []

    def fake(model, inputs, users, k, mode):
        seen.append((len(inputs), k, mode))
        return torch.tensor([prompts[tuple(r.tolist())][:k] for r in inputs])

    monkeypatch.setattr(hits, "generate_last", fake)
    assert hits.hit_share(None, windows, torch.tensor([1, 2, 3]), k=2, batch=2) == pytest.approx(2 / 3)
    assert hits.hit_share(None, windows, torch.tensor([1, 2, 3]), k=1, batch=2) == pytest.approx(1 / 3)
    assert seen[:2] == [(2, 2, "greedy"), (1, 2, "greedy")]  # in batches, greedy


def test_prompt_target_avoid_generates_the_best_item_other_than_the_real_next_one():
    from model.prompt import PromptCache, generate_everywhere

    m = _model()
    inputs, targets = BATCH[:, :-1], BATCH[:, 1:]
    # make each row's real last item (9, 12) the model's top pick after its inputs, so that avoiding it must matter
    table = m.item_embeddings().detach().clone()
    h = m(inputs, USERS)[:, -1].detach()  # (B, d)
    table[9], table[12] = 100 * h[0], 100 * h[1]
    m.output_table = lambda: table
    allow = expand_with_prompts(m, BATCH, USERS, PromptConfig(length=2), 100)[3]
    avoid = expand_with_prompts(m, BATCH, USERS, PromptConfig(length=2, target="avoid"), 100)[3]
    assert allow[:, 0].tolist() == [9, 12]  # left alone, the prompt names the target
    for r, t in enumerate([9, 12]):
        assert t not in avoid[r].tolist() and not set(avoid[r].tolist()) & set(inputs[r].tolist())
        scores = (h[r] @ table.T).clone()  # the best item that is neither in the row, nor padding, nor the target
        scores[[0, t, *inputs[r].tolist()]] = -torch.inf
        assert avoid[r, 0] == scores.argmax()
    # placement "all" with the prefix mask: position t leaves out its own real next item, targets[:, t], and only it
    everywhere = generate_everywhere(m, inputs, USERS, 2, "prefix", avoid=targets)
    plain = generate_everywhere(m, inputs, USERS, 2, "prefix")
    for b in range(2):
        for t in range(inputs.shape[1]):
            if inputs[b, t] > 0:
                assert targets[b, t].item() not in everywhere[b, t].tolist()
                if targets[b, t].item() not in plain[b, t].tolist():  # nothing to avoid: the same prompt
                    assert torch.equal(everywhere[b, t], plain[b, t])
    assert plain[0, -1, 0] == 9 and everywhere[0, -1, 0] != 9
    # prompts cached once an epoch avoid the same items
    cache = PromptCache(PromptConfig(length=2, target="avoid", regenerate="epoch"))
    cache.refresh(m, BATCH, USERS)
    assert torch.equal(cache.lookup(USERS, inputs.shape[1]), avoid)
    for bad in ({"prompt_target": "never"}, {"prompt_target": "avoid", "prompt_placement": "replace"},
                {"prompt_target": "avoid", "prompt_placement": "all"}):
        with pytest.raises(ValueError, match="prompt_target"):
            PromptConfig.from_extra(bad)
    PromptConfig.from_extra({"prompt_target": "avoid", "prompt_placement": "all", "prompt_seen": "prefix"})


def test_prompt_generation_sample_draws_each_item_from_the_softmax_over_the_items_not_in_the_row():
    m = _model()
    table = 30 * m.item_embeddings().detach()  # sharper scores, so that the softmax is far from uniform
    m.output_table = lambda: table  # what generation scores against; the forward pass reads item_emb
    inputs = BATCH[:1, :-1].expand(4000, -1)  # one row, drawn 4000 times
    users = USERS[:1].expand(4000)
    h = m(inputs[:1], users[:1])[0, -1].detach()  # (d,)
    scores = h @ table.T  # (V + 1,)
    scores[[0, *inputs[0].tolist()]] = -torch.inf
    p = scores.softmax(0)
    torch.manual_seed(3)
    got = generate_last(m, inputs, users, 1, mode="sample")[:, 0]  # (4000,)
    freq = torch.bincount(got, minlength=len(p)).float() / len(got)
    assert freq[[0, *inputs[0].tolist()]].sum() == 0  # never padding, never an item of the row
    assert p.max() > 0.3 and (freq - p).abs().max() < 0.03  # binomial sd at most 0.008 with 4000 draws
    # k = 2: the two items of a prompt differ, and so do the prompts of one row (it is not the greedy one)
    two = generate_last(m, inputs[:200], users[:200], 2, mode="sample")
    assert (two[:, 0] != two[:, 1]).all() and len({tuple(r) for r in two.tolist()}) > 1
    x, seg, y, gen = expand_with_prompts(m, BATCH, USERS, PromptConfig(length=2, generation="sample"), 100)
    assert gen.shape == (2, 2) and torch.equal(x[:, -2:], gen)
    with pytest.raises(ValueError, match="prompt_generation=sample"):
        PromptConfig.from_extra({"prompt_generation": "sample", "prompt_placement": "all"})


def test_a_separate_output_head_starts_as_the_tied_model_and_then_trains_apart_from_the_item_table():
    from model.losses import NegativeSampler
    from model.prompt import prompt_loss

    torch.manual_seed(0)
    tied = GPTRec(GPTConfig(n_items=30, n_users=4, d_model=16, n_heads=2, d_ff=32, dropout=0.0))
    torch.manual_seed(0)
    head = GPTRec(GPTConfig(n_items=30, n_users=4, d_model=16, n_heads=2, d_ff=32, dropout=0.0, output_head="separate"))
    # the head draws no random numbers: every other weight is the tied model's
    own = head.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in tied.state_dict().items())
    assert set(own) - set(tied.state_dict()) == {"out_table", "head_filled"}
    assert head.output_table() is head.item_emb.weight  # not filled yet (pre-training): the item table
    head.reset_output_head()
    assert torch.equal(head.output_table(), head.item_embeddings()) and head.output_table() is head.out_table
    assert head.item_embeddings() is head.item_emb.weight  # "separate": ranking keeps the item table
    sampler = NegativeSampler(30, torch.ones(31), "uniform")
    for cfg in (PromptConfig(length=2), PromptConfig(length=2, placement="all", head="separate")):
        a, b = (torch.manual_seed(1) and prompt_loss(m, BATCH, USERS, cfg, sampler, 1) for m in (tied, head))
        assert a.item() == pytest.approx(b.item(), abs=1e-6)  # same prompts, same loss at the start
    # the loss's gradient reaches the head, not the item table through the output side: a step moves them apart
    opt = torch.optim.SGD(head.parameters(), lr=1.0)
    cfg = PromptConfig(length=2, head="separate")
    x = expand_with_prompts(head, BATCH, USERS, cfg, 100)[0]  # the inputs: real and prompt items
    prompt_loss(head, BATCH, USERS, cfg, sampler, 1).backward()
    grad_in = head.item_emb.weight.grad.clone()
    assert head.out_table.grad.abs().sum() > 0
    never_input = torch.tensor([i for i in range(1, 31) if i not in x])
    # an item that is no input of the batch gets no gradient in the item table, only in the head
    assert grad_in[never_input].abs().sum() == 0 and head.out_table.grad[never_input].abs().sum() > 0
    opt.step()
    assert not torch.equal(head.output_table(), head.item_embeddings())
    with pytest.raises(ValueError, match="prompt_head"):
        PromptConfig.from_extra({"prompt_head": "shared"})


def test_a_serving_output_head_is_what_ranking_scores_against_once_the_prompt_stage_filled_it():
    from model.gpt import scores
    from model.recall import torch_search, two_stage_recall

    torch.manual_seed(0)
    m = GPTRec(GPTConfig(n_items=30, n_users=4, d_model=16, n_heads=2, d_ff=32, dropout=0.0, output_head="serve"))
    m.eval()
    assert m.item_embeddings() is m.item_emb.weight  # pre-training ranks by the item table
    m.reset_output_head()
    with torch.no_grad():
        m.out_table.add_(torch.randn_like(m.out_table))  # as if the prompt stage had trained it
    assert m.item_embeddings() is m.out_table and m.output_table() is m.out_table
    h = m.encode(BATCH[:, :-1], USERS)
    want = (h @ m.out_table.T)[:, 1:].argsort(1, descending=True)[:, :3] + 1  # ranked by the head
    assert not torch.equal(want, scores(h, m.item_emb.weight)[:, 1:].argsort(1, descending=True)[:, :3] + 1)
    hist = [r[r > 0].numpy() for r in BATCH[:, :-1]]
    got = two_stage_recall(m, hist, USERS.numpy(), 3, 0, torch_search(m.item_embeddings()))
    # the recall leaves the history out; the head's top 3 of this test hold no history item
    keep = [[i for i in row.tolist() if i not in h_] for row, h_ in zip(want, hist, strict=True)]
    assert got.items.tolist() == keep
    with pytest.raises(ValueError, match="output_head"):
        GPTRec(GPTConfig(n_items=30, output_head="shared"))


def test_prompt_smoothing_is_cross_entropy_against_targets_smoothed_over_all_items():
    from model.losses import NegativeSampler
    from model.prompt import prompt_loss

    m, s = _model(), 0.2
    x, seg, y, _ = expand_with_prompts(m, BATCH, USERS, PromptConfig(length=2), 100)
    sel = y > 0
    logp = torch.log_softmax(m(x, USERS, seg)[sel] @ m.item_embeddings()[1:].T, -1)  # (P, 30)
    nll, uniform = -logp.gather(1, (y[sel] - 1)[:, None]).squeeze(1), -logp.mean(1)  # (P,), (P,)
    on_prompt = seg[sel] == 1
    with torch.no_grad():
        for w in (1.0, 3.0):
            got = prompt_loss(m, BATCH, USERS, PromptConfig(length=2, weight=w, smoothing=s), NegativeSampler(30), 1)
            per = (1 - s) * nll + s * uniform
            want = (per[~on_prompt].sum() + w * per[on_prompt].sum()) / ((~on_prompt).sum() + w * on_prompt.sum())
            assert torch.allclose(got, want, atol=1e-6), w
    for bad in ({"prompt_smoothing": 1.0}, {"prompt_smoothing": "0.1"}, {"prompt_smoothing": 0.1, "prompt_loss": "bce"},
                {"prompt_smoothing": 0.1, "prompt_exclude": "shown"}):
        with pytest.raises(ValueError, match="prompt_smoothing"):
            PromptConfig.from_extra(bad)
    for bad in (1.0, -0.1, "0.2", True):
        with pytest.raises(ValueError, match="prompt_dropout"):
            PromptConfig.from_extra({"prompt_dropout": bad})


def test_the_prompt_stage_freezes_and_sets_its_dropout_when_it_starts_not_through_pre_training(monkeypatch, tmp_path):
    import model.stages as stages
    from model.train import TrainConfig, run

    seen = []

    def spy(real, name):
        def loss(*args, **kw):
            model = next(a for a in args if isinstance(a, torch.nn.Module))
            rates = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
            rates |= {b.attn.dropout for b in model.blocks}
            seen.append((name, model.item_emb.weight.requires_grad, rates, model.training))
            return real(*args, **kw)
        return loss

    monkeypatch.setattr(stages, "pretrain_loss", spy(stages.pretrain_loss, "pretrain"))
    monkeypatch.setattr(stages, "prompt_loss", spy(stages.prompt_loss, "prompt"))
    cfg = TrainConfig(model="recgpt", loss="ce", out=str(tmp_path), stages="pretrain,prompt", epochs=1, patience=5,
                      d_model=16, d_ff=32, batch_size=512, eval_batch=4096, dropout=0.5,
                      extra={"prompt_freeze": "item_emb", "prompt_dropout": 0.1})
    run(cfg, log=lambda *_: None)
    assert {s[0] for s in seen} == {"pretrain", "prompt"}
    assert all(s[1:] == (True, {0.5}, True) for s in seen if s[0] == "pretrain")
    assert all(s[1:] == (False, {0.1}, True) for s in seen if s[0] == "prompt")
