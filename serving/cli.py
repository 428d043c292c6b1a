"""The ``decisioning`` command line: simulate, ingest, objectives, train, serve, decide, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from decisioning.settings import Settings

app = typer.Typer(
    name="decisioning",
    help="Goal-driven next best action: objectives in, decisions out.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console()

DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="where the database and MLflow store live")
]


def load_settings(data_dir: Path | None = None) -> Settings:
    """The settings from the environment, with the data directory overridden if given."""
    settings = Settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def fail(message: str) -> typer.Exit:
    """Print a clear error and return the exit to raise."""
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


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

    run_simulate(
        out=out, customers=customers, days=days, seed=seed, logging=logging, fmt=format,
        console=console,
    )  # fmt: skip


