"""Batches split across processes decide as one engine does, and share budgets exactly."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from decisioning.errors import InvalidInput, NotFound
from decisioning.policy import ServedPolicy
from decisioning.records import Customer
from decisioning.store import open_store
from experiments.quality import example_objective
from models.baselines import RandomPolicy
from serving.batch_processes import ProcessBatch, process_of
from serving.engine import DecisionEngine

NOW = datetime(2026, 3, 3, 10, 30, tzinfo=UTC)  # a Tuesday, 11:30 in Paris
IDS = [f"c{i}" for i in range(60)]
#: repeats, far apart and next to each other: each is decided again after its first decision
ASKED = IDS + ["c3", "c3", "c40", "c7"]


class Fixed:
    def __init__(self) -> None:
        self.served = ServedPolicy(RandomPolicy(seed=1), "test/1")

    def policy_for(self, objective):
        return self.served


def _world(path: Path, budget: float | None = None) -> str:
    url = f"sqlite:///{path}"
    with open_store(url, create=True) as store:
        store.upsert_customers(
            Customer(
                cid,
                signup_at=NOW - timedelta(days=400),
                timezone="Europe/Paris",
                consents={"email": True, "sms": True, "push": True},
                attributes={"plan": "basic"},
            )
            for cid in IDS
        )
        objective = example_objective("premium_upsell").activate()
        if budget is not None:
            objective = objective.model_copy(update={"budget_per_period": budget})
        store.save_objective(objective.model_dump(mode="json"))
    return url


def _opener(url: str):
    return lambda: DecisionEngine(store=open_store(url, hot=True), policies=Fixed(), seed=3)


def _render(decision) -> str:
    return json.dumps(
        {
            "customer": decision.customer_id,
            "action": decision.action.key,
            "send_at": decision.send_at.isoformat() if decision.send_at else None,
            "propensity": decision.propensity,
            "blocked": sorted({(b.action, b.rule) for b in decision.blocked}),
        }
    )


def _by_customer(lines: list[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for line in lines:
        row = json.loads(line)
        out[row["customer"]].append(row)
    return dict(out)


def test_a_split_batch_decides_and_logs_as_one_engine(tmp_path):
    one_url = _world(tmp_path / "one.db")
    shutil.copyfile(tmp_path / "one.db", tmp_path / "split.db")
    split_url = f"sqlite:///{tmp_path / 'split.db'}"

    engine = _opener(one_url)()
    alone = [
        _render(d) for d in engine.decide_many(ASKED, objective_id="premium_upsell", as_of=NOW)
    ]
    engine.store.close()
    batch = ProcessBatch(
        _opener(split_url), ASKED, processes=3, render=_render,
        objective_id="premium_upsell", as_of=NOW, chunk=7,
    )  # fmt: skip
    split = [line for lines in batch for line in lines]

    assert len({process_of(cid, 3) for cid in IDS}) == 3  # every process had customers
    assert split == alone  # line by line, in the order of the list, repeats included
    assert len(_by_customer(split)["c3"]) == 3
    assert batch.ready_s is not None and batch.deciding_s is not None
    with open_store(split_url) as store:
        logged = list(store.iter_decisions())
    assert len(logged) == len(ASKED)
    assert len({d.decision.decision_id for d in logged}) == len(ASKED)
    # one voice within a process: a customer listed again is not contacted twice at once
    for rows in _by_customer(split).values():
        assert sum(r["action"] != "none" and r["send_at"] is not None for r in rows) <= 1


def test_processes_share_the_budget_without_overspending(tmp_path):
    url = _world(tmp_path / "budget.db", budget=3.0)
    batch = ProcessBatch(
        _opener(url), IDS, processes=2, render=_render,
        objective_id="premium_upsell", as_of=NOW, chunk=5,
    )  # fmt: skip
    rows = [json.loads(line) for lines in batch for line in lines]
    objective = example_objective("premium_upsell")
    paid = sum(objective.cost_of(r["action"].split("@")[0]) for r in rows if r["action"] != "none")
    with open_store(url) as store:
        spent = store.spent("premium_upsell", f"{NOW:%Y-%m}")
    assert 0 < paid <= 3.0 + 1e-9
    assert spent == pytest.approx(paid)  # the leases not used went back when each process ended
    assert any(r["action"] == "none" for r in rows)


def test_a_failing_process_raises_its_error_in_the_caller(tmp_path):
    url = _world(tmp_path / "fail.db")
    batch = ProcessBatch(
        _opener(url), IDS, processes=2, render=_render, objective_id="no_such_objective"
    )
    with pytest.raises(NotFound, match="no_such_objective"):
        list(batch)


def test_an_engine_that_cannot_start_stops_the_batch(tmp_path):
    def broken():
        raise InvalidInput("database_url: cannot be reached")

    with pytest.raises(InvalidInput, match="cannot be reached"):
        list(ProcessBatch(broken, IDS, processes=2, render=_render))


def test_a_process_that_dies_is_reported(tmp_path):
    import os

    url = _world(tmp_path / "dies.db")

    def dies_on_render(decision):
        os._exit(3)

    with pytest.raises(RuntimeError, match="exit code 3"):
        list(ProcessBatch(_opener(url), IDS, processes=2, render=dies_on_render))


@pytest.mark.parametrize("field, value", [("processes", 0), ("chunk", 0)])
def test_sizes_below_one_are_refused(tmp_path, field, value):
    sizes = {"processes": 2, "chunk": 10, field: value}
    with pytest.raises(InvalidInput, match=field):
        ProcessBatch(lambda: None, IDS, render=_render, **sizes)  # type: ignore[arg-type]


def test_prepare_runs_once_before_any_engine_and_its_error_stops_the_batch(tmp_path):
    url = _world(tmp_path / "prepare.db")
    mark = tmp_path / "prepared"

    def prepare():
        with mark.open("a") as fh:
            fh.write("once\n")

    def open_engine():
        assert mark.read_text() == "once\n"  # prepared, once, before this engine
        return _opener(url)()

    batch = ProcessBatch(open_engine, IDS, processes=2, render=_render, prepare=prepare)
    assert len([line for lines in batch for line in lines]) == len(IDS)

    def refuses():
        raise InvalidInput("registry: cannot be reached")

    with pytest.raises(InvalidInput, match="registry"):
        list(ProcessBatch(_opener(url), IDS, processes=2, render=_render, prepare=refuses))
