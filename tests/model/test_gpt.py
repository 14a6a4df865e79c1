import pytest
import torch

from model.baselines import GRU4Rec
from model.gpt import GPTConfig, GPTRec


def _models():
    torch.manual_seed(0)
    cfg = GPTConfig(n_items=40, n_users=6, max_len=8, n_layers=2, dropout=0.0)
    post = GPTConfig(n_items=40, n_users=6, max_len=8, n_layers=2, dropout=0.0, norm_first=False)
    return [GPTRec(cfg).eval(), GRU4Rec(cfg).eval(), GPTRec(post).eval()]


@pytest.mark.parametrize("model", _models(), ids=["gpt", "gru4rec", "gpt-post-ln"])
def test_no_future_leakage(model):
    items = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8]])
    users = torch.tensor([1, 2])
    base = model(items, users)
    for t in range(2, 8):
        changed = items.clone()
        changed[:, t] = 33
        out = model(changed, users)
        assert torch.allclose(out[:, :t], base[:, :t], atol=1e-6), f"position < {t} saw item {t}"
        assert not torch.allclose(out[:, t:], base[:, t:])


@pytest.mark.parametrize("which", [0, 2], ids=["pre-ln", "post-ln"])
def test_kv_cache_extension_equals_re_encoding(which):
    model = _models()[which]
    hist = torch.tensor([[0, 0, 0, 3, 4, 5], [1, 2, 3, 4, 5, 6]])
    users = torch.tensor([3, 0])
    appended = torch.tensor([[9, 10, 11], [12, 13, 14]])
    _, cache = model.encode_with_cache(hist, users)
    h_ext, cache = model.extend(cache, appended[:, :2])
    h_ext, _ = model.extend(cache, appended[:, 2:])  # twice: the cache keeps extending
    full = torch.cat([hist, appended], 1)
    seg = torch.cat([torch.zeros_like(hist), torch.ones_like(appended)], 1)
    assert torch.allclose(h_ext, model.encode(full, users, seg), atol=1e-5)


def test_user_module_and_unknown_user():
    model = _models()[0]
    items = torch.tensor([[1, 2, 3, 4]])
    a, b, unk = (model.encode(items, torch.tensor([u])) for u in (1, 2, 0))
    assert not torch.allclose(a, b) and not torch.allclose(a, unk)
    sasrec = GPTRec(GPTConfig(n_items=40, n_users=6, user_module=False)).eval()
    assert torch.allclose(sasrec.encode(items, torch.tensor([1])), sasrec.encode(items, torch.tensor([2])))


def test_infer_user_unknown_serves_everyone_the_unknown_vector_at_inference_only():
    model = _models()[0]
    items = torch.tensor([[1, 2, 3, 4], [0, 5, 6, 7]])
    users = torch.tensor([1, 2])
    own = model.encode(items, users)
    model.cfg.infer_user = "unknown"
    assert torch.allclose(model.encode(items, users), model.encode(items, torch.zeros(2, dtype=torch.long)))
    assert not torch.allclose(model.encode(items, users), own)
    model.train()  # training still uses each user's own vector (dropout off in this config)
    model.cfg.user_dropout = 0.0
    assert not torch.allclose(model(items, users)[:, -1], model(items, torch.zeros(2, dtype=torch.long))[:, -1])
    model.eval()
    model.cfg.infer_user = "own"
