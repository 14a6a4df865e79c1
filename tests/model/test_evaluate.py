import math

import numpy as np
import torch

from model.evaluate import history_mask, metrics_from_ranks, ranks_from_lists, ranks_from_scores


def test_metrics_exact_on_hand_made_ranks():
    # ranks (0-based): hit at 1st, 3rd, 7th, 12th place, and a miss
    m = metrics_from_ranks(np.array([0, 2, 6, 11, np.inf]), ks=(5, 10, 20))
    assert m["HR@5"] == 2 / 5
    assert m["HR@10"] == 3 / 5
    assert m["HR@20"] == 4 / 5
    assert math.isclose(m["NDCG@5"], (1 + 1 / math.log2(4)) / 5)
    assert math.isclose(m["NDCG@10"], (1 + 1 / math.log2(4) + 1 / math.log2(8)) / 5)
    assert math.isclose(m["NDCG@20"], (1 + 1 / math.log2(4) + 1 / math.log2(8) + 1 / math.log2(13)) / 5)
    assert math.isclose(m["MRR"], (1 + 1 / 3 + 1 / 7 + 1 / 12) / 5)


def test_ranks_from_scores_masks_history_and_padding():
    # items 1..5; user 0 has item 5 (the best score) in history, so target 3 moves up one place
    scores = torch.tensor([[9.0, 0.1, 0.5, 0.7, 0.2, 0.9], [9.0, 0.1, 0.5, 0.7, 0.2, 0.9]])
    ex = history_mask([np.array([5]), np.array([], dtype=np.int64)], 6)
    ranks = ranks_from_scores(scores, torch.tensor([3, 3]), ex)
    assert ranks.tolist() == [0.0, 1.0]  # padding column 0 never counts, despite its score 9


def test_target_in_history_is_a_miss():
    scores = torch.tensor([[0.0, 0.3, 0.2]])
    ranks = ranks_from_scores(scores, torch.tensor([1]), history_mask([np.array([1])], 3))
    assert ranks.tolist() == [math.inf]


def test_lists_and_scores_agree():
    rng = np.random.default_rng(0)
    scores = torch.from_numpy(rng.random((50, 31)))
    hist = [rng.choice(np.arange(1, 31), size=3, replace=False) for _ in range(50)]
    targets = torch.from_numpy(rng.integers(1, 31, size=50))
    ex = history_mask(hist, 31)
    r_scores = ranks_from_scores(scores, targets, ex).numpy()
    lists = scores.masked_fill(ex, -torch.inf).topk(10).indices.numpy()
    r_lists = ranks_from_lists(lists, targets.numpy())
    assert np.array_equal(np.where(r_scores < 10, r_scores, np.inf), r_lists)
