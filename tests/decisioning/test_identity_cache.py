"""Tests of the cache by identity that the hot paths share."""

from __future__ import annotations

from decisioning.identity_cache import IdentityCache


def test_only_the_very_object_finds_its_value() -> None:
    cache = IdentityCache[str](limit=4)
    mine, equal = ["email", "sms"], ["email", "sms"]
    assert cache.put(mine, "two channels") == "two channels"
    assert cache.get(mine) == "two channels"
    assert cache.get(equal) is None  # equal, but another object


def test_it_holds_its_objects_and_empties_when_full() -> None:
    cache = IdentityCache[int](limit=2)
    for i in range(2):
        cache.put([i], i)  # no other reference: held by the cache, so their ids stay unique
    assert len(cache) == 2
    third = ["third"]
    cache.put(third, 3)
    assert len(cache) == 1 and cache.get(third) == 3
