"""The holdout: customers an objective never contacts, so its lift can be measured against them.

Membership is a hash of ``"objective_id:customer_id"`` (BLAKE2b) turned into a number in
[0, 1): the same on every machine and in every process (unlike ``hash()``, which
``PYTHONHASHSEED`` salts), different per objective, and nested across fractions (a customer
held out at 5% stays held out at 10%). It depends on the objective's id, not its version, so
an edit does not reshuffle who is held out.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

import numpy as np

from decisioning.errors import InvalidInput

# 53 bits: every value is an exact float, and the largest is still below 1.
_BITS = 53
_SCALE = float(2**_BITS)


def _check_fraction(fraction: float) -> float:
    if not isinstance(fraction, int | float) or math.isnan(fraction) or not 0 <= fraction <= 1:
        raise InvalidInput(f"holdout fraction {fraction!r} is not between 0 and 1")
    return float(fraction)


def holdout_draw(customer_id: str, objective_id: str) -> float:
    """The customer's fixed uniform draw in [0, 1) for ``objective_id``."""
    key = f"{objective_id}:{customer_id}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> (64 - _BITS)) / _SCALE


def in_holdout(customer_id: str, objective_id: str, fraction: float) -> bool:
    """Whether the customer is held out of ``objective_id`` at holdout ``fraction``."""
    fraction = _check_fraction(fraction)
    return holdout_draw(str(customer_id), objective_id) < fraction


def holdout_draws(customer_ids: Iterable[str], objective_id: str) -> np.ndarray:
    """The draws of many customers for one objective, shape ``(n_customers,)``."""
    prefix = f"{objective_id}:".encode()
    blake2b, shift = hashlib.blake2b, 64 - _BITS
    out = np.fromiter(
        (
            int.from_bytes(blake2b(prefix + str(c).encode(), digest_size=8).digest(), "big")
            >> shift
            for c in customer_ids
        ),
        dtype=np.uint64,
    )
    return out.astype(float) / _SCALE


def holdout_mask(customer_ids: Iterable[str], objective_id: str, fraction: float) -> np.ndarray:
    """Which of many customers are held out of ``objective_id``, as a bool array."""
    fraction = _check_fraction(fraction)
    return holdout_draws(customer_ids, objective_id) < fraction
