"""Objective documents: immutable versions, latest by default, lifecycle status."""

from __future__ import annotations

import pytest

from decisioning.errors import Conflict, InvalidInput, NotFound
from decisioning.store import Store


def _doc(objective_id: str, **extra: object) -> dict[str, object]:
    return {"id": objective_id, "version": None, "status": "draft", "name": "Win back", **extra}


def test_an_edit_adds_a_version_and_keeps_the_old_one(store: Store) -> None:
    assert store.save_objective(_doc("winback", budget=100.0)) == 1
    assert store.save_objective(_doc("winback", budget=250.0)) == 2
    latest = store.get_objective("winback")
    assert (latest["version"], latest["budget"]) == (2, 250.0)
    first = store.get_objective("winback", version=1)
    assert (first["version"], first["budget"]) == (1, 100.0)
    assert [d["budget"] for d in store.objective_versions("winback")] == [100.0, 250.0]


def test_saving_does_not_change_the_callers_document(store: Store) -> None:
    doc = _doc("x", channels={"email": True})
    store.save_objective(doc)
    assert doc["version"] is None
    assert store.get_objective("x")["channels"] == {"email": True}


def test_expected_version_guards_against_lost_edits(store: Store) -> None:
    store.save_objective(_doc("x"), expected_version=0)
    store.save_objective(_doc("x", name="edit A"), expected_version=1)
    with pytest.raises(Conflict, match="version 2.*based on version 1"):
        store.save_objective(_doc("x", name="edit B"), expected_version=1)
    assert store.get_objective("x")["name"] == "edit A"


def test_list_objectives_gives_latest_versions_filtered_by_status(store: Store) -> None:
    store.save_objective(_doc("a"))
    store.save_objective(_doc("b"))
    store.save_objective(_doc("b", name="renamed"))
    assert [(d["id"], d["version"]) for d in store.list_objectives()] == [("a", 1), ("b", 2)]
    updated = store.set_objective_status("b", "active")
    assert updated["status"] == "active" and updated["version"] == 2
    assert [d["id"] for d in store.list_objectives(status="active")] == ["b"]
    assert [d["id"] for d in store.list_objectives(status="draft")] == ["a"]
    assert store.get_objective("b")["status"] == "active"
    assert store.get_objective("b", version=1)["status"] == "draft"  # old version untouched


def test_missing_and_bad_objectives(store: Store) -> None:
    with pytest.raises(NotFound, match="'nope'"):
        store.get_objective("nope")
    store.save_objective(_doc("a"))
    with pytest.raises(NotFound, match="version 7"):
        store.get_objective("a", version=7)
    with pytest.raises(NotFound):
        store.set_objective_status("nope", "active")
    with pytest.raises(InvalidInput, match="'id'"):
        store.save_objective({"status": "draft"})
    with pytest.raises(InvalidInput, match="JSON"):
        store.save_objective(_doc("a", bad=object()))
