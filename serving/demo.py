"""``make demo``: the whole product on embedded defaults, printing what it does.

Simulate a customer history, load it into the customer view, register two objectives, train
and register their policies in MLflow, start the decision API, ask it for decisions for a few
customers, print them with their explanations, and shut it down.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from rich.console import Console
from rich.panel import Panel

from decisioning.settings import Settings

OBJECTIVES = Path(__file__).resolve().parents[1] / "experiments" / "objectives"
DEMO_KEY = "demo-orchestrator-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_demo(*, settings: Settings, customers: int, days: int, console: Console) -> None:
    """Run every step of the product once, on a fresh data directory."""
    from serving.cli_models import run_train

    history_dir = settings.data_dir / "history"
    for stale in ("decisioning.db", "decisioning.db-wal", "decisioning.db-shm", "mlflow.db"):
        (settings.data_dir / stale).unlink(missing_ok=True)
    shutil.rmtree(settings.data_dir / "mlartifacts", ignore_errors=True)
    settings = settings.model_copy(
        update={"api_keys": SecretStr(f"orchestrator:{DEMO_KEY},data_scientist:{DEMO_KEY}-ds")}
    )

    console.rule("1. Simulate a customer world")
    from experiments.simulator.cli import run_simulate

    run_simulate(
        out=history_dir, customers=customers, days=days, seed=settings.seed,
        logging="uniform", fmt="parquet", console=console, start=_history_start(days),
    )  # fmt: skip

    console.rule("2. Load the history into the real-time customer view")
    from decisioning.history import load_history
    from decisioning.store import open_store

    history = load_history(history_dir)
    console.print(history.report.summary())
    store = open_store(settings.resolved_database_url, create=True)
    started = time.perf_counter()
    result = store.ingest_history(history)
    console.print(
        f"{result.customers:,} customers, {result.events.applied:,} events and "
        f"{result.contacts.applied:,} contacts in {time.perf_counter() - started:.1f}s"
    )

    console.rule("3. Register the marketers' objectives")
    from decisioning.objectives import load_objectives_yaml
    from decisioning.segment import field_catalogue

    fields = field_catalogue(history.customers.drop(columns=["customer_id"]))
    for name in ("premium_upsell", "churn"):
        for objective in load_objectives_yaml(OBJECTIVES / f"{name}.yaml", fields=fields):
            objective = objective.activate() if objective.status != "active" else objective
            store.save_objective(objective.model_dump(mode="json"))
            console.print(f"[bold]{objective.id}[/]: {objective.describe()}")

    console.rule("4. Train, evaluate off-policy and register the policies (MLflow)")
    for name in ("premium_upsell", "churn"):
        run_train(
            settings=settings, objective_id=name, data=history_dir, from_log=False, force=False,
            console=console,
        )  # fmt: skip

    console.rule("5. Serve decisions over HTTP")
    _serve_and_ask(settings, history, console)


def _serve_and_ask(settings: Settings, history: Any, console: Console) -> None:
    import uvicorn

    from serving.service import create_service_app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_service_app(settings), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, headers={"X-API-Key": DEMO_KEY}, timeout=30) as client:
            for _ in range(100):
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            console.print(f"decision API listening on {base} (OpenAPI at {base}/docs)")
            ids = history.customers["customer_id"].head(60).tolist()
            answers = []
            for cid in ids:
                response = client.post("/v1/decisions", json={"customer_id": cid})
                response.raise_for_status()
                answers.append(response.json())
            contacts = [d for d in answers if d["action"]["channel"] != "none"]
            nothing = [d for d in answers if d["action"]["channel"] == "none"]
            console.print(
                f"{len(answers)} customers asked: {len(contacts)} contacts, "
                f"{len(nothing)} do-nothing decisions"
            )
            for d in contacts[:4] + nothing[:2]:
                console.print(_decision_panel(d))
            ids = [(contacts or answers)[0]["customer_id"]]
            ticket = client.post(
                "/v1/events",
                json={
                    "event_id": "demo-ticket-1",
                    "customer_id": ids[0],
                    "type": "support_ticket_opened",
                    "ts": _now_iso(),
                },
            )
            ticket.raise_for_status()
            again = client.post("/v1/decisions", json={"customer_id": ids[0]}).json()
            console.print(
                Panel(
                    f"{ids[0]} opened a support ticket; the next decision at once: "
                    f"[bold]{again['action']['key']}[/] - {again['explanation']}",
                    title="Fresh events change the next decision",
                )
            )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    console.print("service stopped; data, database and MLflow store are under", settings.data_dir)


def _decision_panel(d: dict[str, Any]) -> Panel:
    head = (
        f"[bold]{d['action']['key']}[/]"
        + (f" at {d['send_at'][:16].replace('T', ' ')} UTC" if d.get("send_at") else "")
        + f"  p={d['propensity']:.2f}  model={d['model_version']}"
        + ("  [yellow]holdout[/]" if d.get("holdout") else "")
    )
    return Panel(
        f"{head}\n{d['explanation']}",
        title=f"{d['customer_id']} - {d.get('objective') or 'no objective'}",
        title_align="left",
    )


def _history_start(days: int) -> Any:
    """A history that ends today, so the service decides right after it."""
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()
