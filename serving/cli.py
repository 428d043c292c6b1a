"""The ``decisioning`` command line: simulate, ingest, objectives, train, serve, decide, demo."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from decisioning.errors import DecisioningError
from decisioning.settings import Settings

app = typer.Typer(
    name="decisioning",
    help="Goal-driven next best action: objectives in, decisions out.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
objectives_app = typer.Typer(
    help="Register and manage the marketers' objectives.", no_args_is_help=True
)
app.add_typer(objectives_app, name="objectives")
console = Console()

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="where the database and MLflow store live (default: data)"),
]
ObjectiveOpt = Annotated[str, typer.Option("--objective", help="the objective's id")]


def load_settings(data_dir: Path | None = None) -> Settings:
    """The settings from the environment, with the data directory overridden if given."""
    settings = Settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def open_settings_store(settings: Settings) -> Any:
    from decisioning.store import open_store

    return open_store(settings.resolved_database_url, create=True)


def _run(fn: Any) -> Any:
    """Run ``fn``, turning the domain's errors into a clear message and exit code 2."""
    try:
        return fn()
    except DecisioningError as err:
        console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(code=2) from None


@app.callback()
def main_callback() -> None:
    """Goal-driven next best action: objectives in, decisions out."""


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="directory to write customers, contacts, events")],
    customers: Annotated[int, typer.Option(min=1, help="number of customers")] = 10_000,
    days: Annotated[int, typer.Option(min=1, help="days of history")] = 30,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    logging: Annotated[
        str, typer.Option(help="logging policy: uniform (propensities logged) or legacy")
    ] = "uniform",
    format: Annotated[str, typer.Option(help="parquet or csv")] = "parquet",
) -> None:
    """Simulate a customer world and write its history in the data contract."""
    from experiments.simulator.cli import run_simulate

    _run(lambda: run_simulate(
        out=out, customers=customers, days=days, seed=seed, logging=logging, fmt=format,
        console=console,
    ))  # fmt: skip


@app.command()
def ingest(
    directory: Annotated[
        Path, typer.Argument(help="history directory (customers, contacts, events)")
    ],
    data_dir: DataDir = None,
    strict: Annotated[bool, typer.Option(help="fail on rows of unknown customers")] = True,
) -> None:
    """Load a history into the real-time customer view (idempotent)."""
    from decisioning.history import load_history

    settings = load_settings(data_dir)

    def go() -> None:
        with console.status(f"loading {directory}"):
            history = load_history(directory, strict=strict)
        console.print(history.report.summary())
        store = open_settings_store(settings)
        with console.status("updating the customer view"):
            result = store.ingest_history(history)
        console.print(
            f"ingested {result.customers:,} customers, {result.events.applied:,} new events "
            f"({result.events.duplicates:,} already seen), {result.contacts.applied:,} new contacts"
        )

    _run(go)


# -- objectives ------------------------------------------------------------------------------


def _objective_table(docs: list[dict[str, Any]]) -> Table:
    table = Table("id", "version", "status", "priority", "kind", "segment", title="Objectives")
    for d in docs:
        table.add_row(
            d["id"], str(d["version"]), d["status"], str(d.get("priority", "")), d["kind"],
            d.get("segment") or "everyone",
        )  # fmt: skip
    return table


@objectives_app.command("add")
def objectives_add(
    file: Annotated[Path, typer.Argument(help="YAML file with one objective or a list")],
    data_dir: DataDir = None,
    activate: Annotated[bool, typer.Option(help="activate on registration")] = False,
) -> None:
    """Register objectives from YAML (an existing id gets a new version)."""
    from decisioning.objectives import Objective, load_objectives_yaml
    from decisioning.segment import attribute_kinds, field_catalogue

    settings = load_settings(data_dir)

    def go() -> None:
        store = open_settings_store(settings)
        ids = [cid for _, cid in zip(range(500), store.iter_customer_ids(), strict=False)]
        states = store.get_states(ids).values()
        fields = field_catalogue(attribute_kinds([s.attributes for s in states]))
        for objective in load_objectives_yaml(file, fields=fields):
            try:
                current = Objective.model_validate(store.get_objective(objective.id))
                changes = objective.model_dump(
                    exclude={"id", "version", "status", "created_at", "updated_at"}
                )
                objective = current.with_changes(fields=fields, **changes)
            except DecisioningError:
                pass
            if activate and objective.status != "active":
                objective = objective.activate()
            version = store.save_objective(objective.model_dump(mode="json"))
            console.print(
                f"registered [bold]{objective.id}[/] version {version}: {objective.describe()}"
            )

    _run(go)


@objectives_app.command("list")
def objectives_list(data_dir: DataDir = None) -> None:
    """List the objectives (latest versions)."""
    store = open_settings_store(load_settings(data_dir))
    console.print(_objective_table(store.list_objectives()))


@objectives_app.command("show")
def objectives_show(objective_id: str, data_dir: DataDir = None) -> None:
    """Show one objective in full."""
    store = open_settings_store(load_settings(data_dir))
    doc = _run(lambda: store.get_objective(objective_id))
    console.print_json(json.dumps(doc, default=str))


def _set_status(objective_id: str, status: str, data_dir: Path | None) -> None:
    store = open_settings_store(load_settings(data_dir))
    doc = _run(lambda: store.set_objective_status(objective_id, status))
    console.print(f"{objective_id} is now {doc['status']}")


@objectives_app.command("pause")
def objectives_pause(objective_id: str, data_dir: DataDir = None) -> None:
    """Pause an objective: it stops deciding."""
    _set_status(objective_id, "paused", data_dir)


@objectives_app.command("activate")
def objectives_activate(objective_id: str, data_dir: DataDir = None) -> None:
    """Activate an objective: it starts deciding."""
    _set_status(objective_id, "active", data_dir)


# -- models ----------------------------------------------------------------------------------


@app.command()
def train(
    objective: ObjectiveOpt,
    data: Annotated[Path | None, typer.Option(help="history directory to learn from")] = None,
    from_log: Annotated[
        bool, typer.Option("--from-log", help="learn from the service's own decision log")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="make the new policy champion without the gate")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Train, evaluate off-policy and register a policy for an objective in MLflow."""
    from serving.cli_models import run_train

    settings = load_settings(data_dir)
    _run(lambda: run_train(
        settings=settings, objective_id=objective, data=data, from_log=from_log, force=force,
        console=console,
    ))  # fmt: skip


@app.command()
def evaluate(
    objective: ObjectiveOpt,
    data: Annotated[Path, typer.Option(help="history directory to evaluate on")],
    data_dir: DataDir = None,
) -> None:
    """Evaluate the champion, the challenger and the baselines off-policy on a history."""
    from serving.cli_models import run_evaluate

    settings = load_settings(data_dir)
    _run(
        lambda: run_evaluate(settings=settings, objective_id=objective, data=data, console=console)
    )


@app.command()
def promote(
    objective: ObjectiveOpt,
    version: Annotated[
        str | None, typer.Option(help="model version (default: the challenger)")
    ] = None,
    force: Annotated[bool, typer.Option(help="skip the off-policy gate")] = False,
    data_dir: DataDir = None,
) -> None:
    """Move the champion alias to a model version, through the off-policy gate unless forced."""
    from serving.cli_models import run_promote

    settings = load_settings(data_dir)
    _run(lambda: run_promote(
        settings=settings, objective_id=objective, version=version, force=force, console=console
    ))  # fmt: skip


# -- serving ---------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    data_dir: DataDir = None,
) -> None:
    """Start the decision API with uvicorn."""
    import uvicorn

    from serving.service import create_service_app

    settings = load_settings(data_dir)
    uvicorn.run(create_service_app(settings), host=host, port=port, log_level="info")


@app.command()
def decide(
    objective: ObjectiveOpt,
    customers: Annotated[
        Path, typer.Option(help="file of customer ids, one a line (or CSV with customer_id)")
    ],
    out: Annotated[Path, typer.Option(help="where to write the decisions (JSON lines)")],
    at: Annotated[
        str | None, typer.Option(help="decide as of this ISO timestamp (backtest); default now")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            help="processes to split the batch across (one per core; pays on large lists)"
        ),
    ] = 1,
    data_dir: DataDir = None,
) -> None:
    """Batch decisions for customers, through the same code path as the API, logged."""
    from serving.cli_models import run_decide

    settings = load_settings(data_dir)
    _run(lambda: run_decide(
        settings=settings, objective_id=objective, customers=customers, out=out,
        at=parse_timestamp(at) if at else None, console=console, workers=workers,
    ))  # fmt: skip


def parse_timestamp(text: str) -> datetime:
    """An ISO timestamp; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        console.print(f"[bold red]error:[/] --at {text!r} is not an ISO timestamp")
        raise typer.Exit(code=2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def attribute(
    at: Annotated[
        str | None, typer.Option(help="attribute as of this ISO time (default now)")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Attribute rewards to logged decisions whose attribution window has passed."""
    from serving.service import RewardJob, build_engine

    settings = load_settings(data_dir)
    job = RewardJob(build_engine(settings), interval=1.0, online=False)
    when = parse_timestamp(at) if at else None
    count = _run(lambda: job.run_once(when))
    console.print(f"{count:,} decisions rewarded")
    for reason, skipped in job.skipped.items():
        console.print(f"[yellow]{skipped:,} decisions left without a reward:[/] {reason}")


@app.command()
def preview(
    objective: Annotated[
        Path, typer.Option("--objective", help="YAML file of the objective to preview")
    ],
    data: Annotated[Path, typer.Option(help="history directory the estimates come from")],
    data_dir: DataDir = None,
) -> None:
    """What to expect from an objective before it goes live: estimates, reach, time to a lift."""
    from serving.cli_preview import run_preview

    settings = load_settings(data_dir)
    _run(lambda: run_preview(settings, objective, data, console))


@app.command()
def experiment(
    days: Annotated[int, typer.Option(min=1, help="days of closed loop")] = 14,
    customers: Annotated[
        int, typer.Option(min=100, help="customers in the simulated world")
    ] = 5_000,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="report folder (default: data/experiment)")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Run the service day by day against the simulator, every arm on the same population."""
    from experiments.closed_loop.loop import run_experiment

    settings = load_settings(data_dir)
    _run(lambda: run_experiment(
        settings, days=days, customers=customers, seed=seed,
        out_dir=out or settings.data_dir / "experiment", console=console,
    ))  # fmt: skip


@app.command()
def demo(
    data_dir: DataDir = None,
    customers: Annotated[int, typer.Option(help="customers in the simulated world")] = 5_000,
    days: Annotated[int, typer.Option(help="days of simulated history")] = 30,
) -> None:
    """Run the whole product on embedded defaults: simulate, ingest, objectives, train, serve, decide."""
    from serving.demo import run_demo

    settings = load_settings(data_dir)
    _run(lambda: run_demo(settings=settings, customers=customers, days=days, console=console))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
