"""``decisioning decide``: its customer files, and batches in one process or several."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from decisioning.errors import InvalidInput, NotFound
from decisioning.records import Customer
from decisioning.settings import Settings
from decisioning.store import open_store
from experiments.quality import example_objective
from serving.cli_models import read_customer_ids, run_decide


def test_one_id_a_line_skips_blank_lines(tmp_path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("c1\n\n  c2  \nc1\n")
    assert read_customer_ids(path) == ["c1", "c2", "c1"]  # a repeat is decided again


def test_a_csv_gives_its_customer_id_column(tmp_path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("customer_id,plan\nc1,basic\n c2 ,premium\n")
    assert read_customer_ids(path) == ["c1", "c2"]


def test_a_csv_row_without_a_customer_id_is_refused_with_its_row(tmp_path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("customer_id,plan\nc1,basic\n,premium\nc3,basic\n  ,basic\n")
    with pytest.raises(InvalidInput, match=r"ids\.csv: customer_id is empty in data row\(s\) 2, 4"):
        read_customer_ids(path)


def test_a_csv_without_the_column_or_a_missing_file_is_refused(tmp_path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("id,plan\nc1,basic\n")
    with pytest.raises(InvalidInput, match="customer_id column"):
        read_customer_ids(path)
    with pytest.raises(InvalidInput, match="does not exist"):
        read_customer_ids(tmp_path / "missing.txt")


def _decide_world(data_dir: Path) -> Settings:
    settings = Settings(data_dir=data_dir)
    with open_store(settings.resolved_database_url, create=True) as store:
        store.upsert_customers(
            Customer(
                f"c{i}",
                signup_at=AS_OF - timedelta(days=90),
                timezone="UTC",
                consents={"email": True, "push": True},
                attributes={"plan": "basic"},
            )  # fmt: skip
            for i in range(30)
        )
        store.save_objective(example_objective("premium_upsell").activate().model_dump(mode="json"))
    return settings


AS_OF = datetime(2026, 3, 3, 10, tzinfo=UTC)


@pytest.mark.parametrize("workers", [1, 2])
def test_decide_writes_and_logs_a_decision_per_listed_customer(tmp_path, workers) -> None:
    settings = _decide_world(tmp_path / "data")
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join([f"c{i}" for i in range(30)] + ["c4", "unknown"]) + "\n")
    out = tmp_path / "out.jsonl"
    count = run_decide(
        settings=settings, objective_id="premium_upsell", customers=ids, out=out, at=AS_OF,
        console=Console(quiet=True), workers=workers,
    )  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert count == len(rows) == 32
    # in the file's order, whatever the number of processes
    assert [r["customer_id"] for r in rows] == [f"c{i}" for i in range(30)] + ["c4", "unknown"]
    assert all(r["fallback"] for r in rows)  # no champion trained yet: the rule-based policy
    with open_store(settings.resolved_database_url) as store:
        logged = {d.decision.decision_id for d in store.iter_decisions()}
    assert logged == {r["decision_id"] for r in rows}


def test_decide_in_processes_refuses_an_unknown_objective_before_any_work(tmp_path) -> None:
    settings = _decide_world(tmp_path / "data")
    ids = tmp_path / "ids.txt"
    ids.write_text("c1\n")
    with pytest.raises(NotFound, match="objectives add"):
        run_decide(
            settings=settings, objective_id="nope", customers=ids, out=tmp_path / "o.jsonl",
            at=AS_OF, console=Console(quiet=True), workers=2,
        )  # fmt: skip
    with pytest.raises(InvalidInput, match="--workers"):
        run_decide(
            settings=settings, objective_id="premium_upsell", customers=ids,
            out=tmp_path / "o.jsonl", at=AS_OF, console=Console(quiet=True), workers=0,
        )  # fmt: skip
