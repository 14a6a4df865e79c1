import numpy as np
import pytest
import torch

from model.comirec import ComiRecSA
from model.gpt import GPTConfig, GPTRec
from model.recall import recall_ranks, split_grid_ranks, split_lists, torch_search, two_stage_recall


def test_split_lists_cuts_a_split_from_the_longer_lists_by_hand():
    stage1 = np.array([[5, 6, 7, 8]])
    stage2 = np.array([[6, 9, 8, 10, 11]])  # 6 and 8 are stage-1 items of the longer split: left out there
    assert split_lists(stage1, stage2, 4, 1).tolist() == [[5, 6, 9, 8]]
    assert split_lists(stage1, stage2, 4, 2).tolist() == [[5, 6, 9, 8]]
    assert split_lists(stage1, stage2, 4, 3).tolist() == [[5, 6, 7, 9]]
    assert split_lists(stage1, stage2, 5, 3).tolist() == [[5, 6, 7, 9, 8]]
    # the catalog ran out: -1 pads, and a -1 of stage 2 is never an item
    assert split_lists(stage1, np.array([[6, 9, -1, -1, -1]]), 5, 2).tolist() == [[5, 6, 9, -1, -1]]


def _model(kind: str):
    torch.manual_seed(0)
    cfg = GPTConfig(n_items=80, n_users=100, max_len=12, n_layers=2, dropout=0.0)
    return (GPTRec(cfg) if kind == "gpt" else ComiRecSA(cfg)).eval()


@pytest.mark.parametrize("kind", ["gpt", "comirec"])
@pytest.mark.parametrize("append", [1, 2])
def test_one_recall_for_the_grid_equals_a_recall_a_split(kind, append):
    rng = np.random.default_rng(0)
    users = np.arange(1, 61)
    hist = [rng.choice(np.arange(1, 81), size=rng.integers(2, 12), replace=False) for _ in users]
    model = _model(kind)
    search = torch_search(model.item_embeddings())
    grid = {6: [2, 3, 5, 6], 12: [4, 8, 11, 12]}
    for k, n in [(k, n) for k, ns in grid.items() for n in ns if n >= append]:
        # targets at random positions of each user's list of this split (stage 1 and stage 2), a miss for some
        lists = two_stage_recall(model, hist, users, n, k - n, search, append=append).items
        targets = lists[np.arange(len(users)), rng.integers(0, k, len(users))]
        targets[::4] = rng.integers(1, 81, len(targets[::4]))
        # one split and the largest K: the split is cut from lists of 12 (one grid is checked whole below)
        fast = split_grid_ranks(model, hist, targets, users, {12: [12], k: [n]}, append, batch_size=7)
        plain = recall_ranks(model, hist, targets, users, n, k - n, append=append, batch_size=7)
        assert np.array_equal(fast[(k, n)], plain), (k, n)
        stage2_hits = (np.isfinite(plain) & (plain >= n)).sum()
        assert (plain < n).sum() > 10 and (stage2_hits > 0 or n == k)  # stage-1 and stage-2 hits are compared
    assert sorted(split_grid_ranks(model, hist, targets, users, grid, append)) == sorted(
        (k, n) for k, ns in grid.items() for n in ns if n >= append)
