"""The holdout: deterministic, close to its fraction, independent per objective and process."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from decisioning.errors import InvalidInput
from decisioning.holdout import holdout_draw, holdout_draws, holdout_mask, in_holdout

IDS = [f"cust-{i:05d}" for i in range(20_000)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.25, 0.5])
def test_fraction_close_to_target(fraction: float) -> None:
    held = holdout_mask(IDS, "premium_upsell", fraction)
    tolerance = 4 * math.sqrt(fraction * (1 - fraction) / len(IDS))
    assert abs(held.mean() - fraction) < tolerance


def test_stable_across_calls_and_variants() -> None:
    first = holdout_mask(IDS, "churn", 0.1)
    assert np.array_equal(first, holdout_mask(IDS, "churn", 0.1))
    one_by_one = [in_holdout(c, "churn", 0.1) for c in IDS[:2000]]
    assert one_by_one == first[:2000].tolist()
    assert holdout_draws(IDS[:50], "churn").tolist() == [holdout_draw(c, "churn") for c in IDS[:50]]


def test_draw_follows_the_documented_hash() -> None:
    # The contract stored holdouts rely on: blake2b-64 of "objective:customer", top 53 bits.
    digest = hashlib.blake2b(b"churn:cust-00042", digest_size=8).digest()
    assert holdout_draw("cust-00042", "churn") == (int.from_bytes(digest, "big") >> 11) / 2**53


def test_independent_of_hash_seed_and_process() -> None:
    code = (
        "from decisioning.holdout import holdout_draws;"
        "print(repr(holdout_draws([f'c{i}' for i in range(20)], 'churn').tolist()))"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(result.stdout.strip())
    assert outputs == {repr(holdout_draws([f"c{i}" for i in range(20)], "churn").tolist())}


def test_objectives_hold_out_different_customers() -> None:
    a = holdout_mask(IDS, "premium_upsell", 0.2)
    b = holdout_mask(IDS, "churn", 0.2)
    both = (a & b).mean()
    assert abs(both - 0.04) < 4 * math.sqrt(0.04 * 0.96 / len(IDS))


def test_larger_fraction_keeps_everyone_already_held_out() -> None:
    small = holdout_mask(IDS, "churn", 0.05)
    large = holdout_mask(IDS, "churn", 0.15)
    assert np.all(large[small]) and large.sum() > small.sum()


def test_draws_are_uniform_in_unit_interval() -> None:
    draws = holdout_draws(IDS, "premium_upsell")
    assert draws.min() >= 0.0 and draws.max() < 1.0
    counts, _ = np.histogram(draws, bins=10, range=(0.0, 1.0))
    expected = len(IDS) / 10
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 27.9  # 99.9th percentile of chi-squared with 9 degrees of freedom


def test_edges_and_bad_fractions() -> None:
    assert not holdout_mask(IDS[:100], "x", 0.0).any()
    assert holdout_mask(IDS[:100], "x", 1.0).all()
    assert holdout_mask([], "x", 0.5).shape == (0,)
    assert in_holdout(12345, "x", 0.5) == in_holdout("12345", "x", 0.5)  # type: ignore[arg-type]
    for bad in (-0.1, 1.5, float("nan"), "0.1"):
        with pytest.raises(InvalidInput, match="holdout fraction"):
            in_holdout("c1", "x", bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="holdout fraction"):
            holdout_mask(["c1"], "x", bad)  # type: ignore[arg-type]
