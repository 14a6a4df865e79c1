"""A/B variants: sticky hash assignment, traffic shares, forcing, and a variant on another bundle."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from service.variants import DEFAULT, VariantsConfig, load_variants
from tests.service.conftest import Running


def test_assignment_is_sticky_and_follows_shares() -> None:
    cfg = VariantsConfig.model_validate(
        {"salt": "s1", "variants": [{"name": "a", "share": 0.3}, {"name": "b", "share": 0.7}]}
    )
    counts = Counter(cfg.assign(f"user{i}").name for i in range(20000))
    assert abs(counts["a"] / 20000 - 0.3) < 0.02
    assert all(cfg.assign(f"user{i}") == cfg.assign(f"user{i}") for i in range(100))
    other = VariantsConfig.model_validate({"salt": "s2", "variants": cfg.model_dump()["variants"]})
    assert (
        sum(cfg.assign(f"u{i}").name != other.assign(f"u{i}").name for i in range(1000)) > 100
    )  # salt reshuffles
    assert DEFAULT.variants[0].n_m(50) == (45, 5) and DEFAULT.variants[0].n_m(1) == (1, 0)
    # a split per K (as offline evaluation has), the fraction for the other K
    per_k = VariantsConfig.model_validate({"variants": [{"name": "a", "split": 0.9, "splits": {"10": 8, "50": 40}}]})
    assert [per_k.variants[0].n_m(k) for k in (10, 20, 50)] == [(8, 2), (18, 2), (40, 10)]


def test_bad_variant_files(tmp_path: Path) -> None:
    for bad in (
        {"variants": []},
        {"variants": [{"name": "a"}, {"name": "a"}]},
        {"variants": [{"name": "a", "share": 0}]},
        {"variants": [{"name": "a", "splt": 1}]},
        {"variants": [{"name": "a", "splits": {10: 11}}]},
        {"variants": [{"name": "a", "splits": {10: 0}}]},
        {"variants": [{"name": "a", "append": 0}]},
        {"variants": [{"name": "a", "append": "best"}]},
    ):
        p = tmp_path / "v.yaml"
        p.write_text(yaml.safe_dump(bad))
        with pytest.raises(ValidationError):
            load_variants(p)


def test_service_splits_traffic(serve: Callable[..., Running], tmp_path: Path, bundle_v2: Path) -> None:
    spec = {
        "salt": "exp1",
        "variants": [
            {"name": "control", "share": 0.5, "split": 1.0},
            {"name": "treatment", "share": 0.3, "split": 0.9},
            {"name": "other", "share": 0.2, "split": 0.9, "bundle": str(bundle_v2)},
        ],
    }
    (tmp_path / "variants.yaml").write_text(yaml.safe_dump(spec))
    s = serve(variants=str(tmp_path / "variants.yaml"))
    seen: Counter[str] = Counter()
    n = 300
    for i in range(n):
        body = s.recall(user_id=f"user{i}", k=10, history=["1", "2"]).json()
        seen[body["variant"]] += 1
        stages = {x["stage"] for x in body["items"]}
        if body["variant"] == "control":
            assert stages == {"1"} and (body["n"], body["m"]) == (10, 0)
        else:
            assert stages == {"1", "2"}
        assert body["model_version"] == ("v2" if body["variant"] == "other" else "v1")
    for v in spec["variants"]:
        assert abs(seen[v["name"]] / n - v["share"]) < 0.08, seen
    forced = s.recall(user_id="user0", k=10, variant="other", history=["1"]).json()
    assert forced["variant"] == "other"
    assert (
        s.metric("recgpt_recall_requests_total", variant="control", status="200", traffic="served")
        == seen["control"]
    )
