"""The data scientist's commands: train, evaluate, promote; and batch decisions from a file."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from decisioning.errors import InvalidInput, LearningError, NotFound
from decisioning.objectives import Objective
from decisioning.settings import Settings


def load_objective(store: Any, objective_id: str) -> Objective:
    """The objective's latest version from the store, with a hint when it is not there."""
    try:
        return Objective.model_validate(store.get_objective(objective_id))
    except NotFound:
        raise NotFound(
            f"objective {objective_id!r} is not registered: add it with "
            "`decisioning objectives add FILE.yaml`"
        ) from None


def history_frames(*, data: Path | None, store: Any, from_log: bool) -> dict[str, pd.DataFrame]:
    """The history tables to learn from: a directory, or the service's own log."""
    if from_log:
        from training.export import export_history

        return export_history(store)
    if data is None:
        raise InvalidInput("give --data DIR (a history directory) or --from-log")
    from decisioning.history import load_history

    history = load_history(data)
    return {"customers": history.customers, "contacts": history.contacts, "events": history.events}


def ope_table(frame: pd.DataFrame, title: str) -> Table:
    """An OPE table: one row per policy, the four estimators with DR's interval."""
    table = Table("policy", "IPS", "SNIPS", "DM", "DR", "DR 95% interval", "ESS", title=title)
    pivot = frame.pivot_table(index="policy", columns="estimator", values="value", sort=False)
    dr = frame[frame["estimator"] == "dr"].set_index("policy")
    for policy in pivot.sort_values("dr", ascending=False).index:
        row = pivot.loc[policy]
        table.add_row(
            policy,
            *(f"{row[e]:+.4f}" for e in ("ips", "snips", "dm", "dr")),
            f"[{dr.loc[policy, 'ci_low']:+.4f}, {dr.loc[policy, 'ci_high']:+.4f}]",
            f"{dr.loc[policy, 'ess']:,.0f}",
        )
    return table


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
    )


def run_train(
    *,
    settings: Settings,
    objective_id: str,
    data: Path | None,
    from_log: bool,
    force: bool,
    console: Console,
) -> Any:
    """``decisioning train``: one training run, its OPE table and the promotion verdict."""
    from decisioning.store import open_store
    from training.pipeline import train

    store = open_store(settings.resolved_database_url, create=True)
    objective = load_objective(store, objective_id)
    frames = history_frames(data=data, store=store, from_log=from_log)
    with _progress(console) as progress:
        task = progress.add_task("training", total=1.0)

        def step(what: str, share: float) -> None:
            progress.update(task, completed=share, description=what)

        result = train(objective=objective, **frames, settings=settings, force=force, progress=step)
    console.print(ope_table(result.table, f"Off-policy evaluation: {objective_id}"))
    for note in result.warnings:
        console.print(f"[yellow]warning:[/] {note}")
    verdict = "champion" if result.promotion.promoted else "challenger"
    console.print(
        f"registered [bold]{objective_id}[/] version {result.model_version} "
        f"({result.candidate}) as {verdict}: {result.promotion.reason}"
    )
    return result


def run_evaluate(*, settings: Settings, objective_id: str, data: Path, console: Console) -> Any:
    """``decisioning evaluate``: champion, challenger and baselines on a history, nothing registered."""
    from decisioning.store import open_store
    from training.fit import LearnerSettings
    from training.pipeline import fit_and_evaluate
    from training.registry import CHALLENGER, CHAMPION

    store = open_store(settings.resolved_database_url, create=True)
    objective = load_objective(store, objective_id)
    frames = history_frames(data=data, store=store, from_log=False)
    with console.status("evaluating"):
        ev = fit_and_evaluate(
            objective=objective,
            **frames,
            settings=settings,
            learner=LearnerSettings(seed=settings.seed),
            registered=(CHAMPION, CHALLENGER),
        )
    console.print(ope_table(ev.table.to_frame(), f"Off-policy evaluation: {objective_id}"))
    for note in ev.notes:
        console.print(f"[yellow]note:[/] {note}")
    return ev


def run_promote(
    *, settings: Settings, objective_id: str, version: str | None, force: bool, console: Console
) -> Any:
    """``decisioning promote``: the gate reads the DR figures recorded on each model version."""
    from training.registry import CHALLENGER, CHAMPION, alias_version, connect, promote

    client = connect(settings)
    version = version or alias_version(client, objective_id, CHALLENGER)
    if version is None:
        raise NotFound(f"objective {objective_id!r} has no challenger: give --version")
    candidate = client.get_model_version(objective_id, version)
    champion = alias_version(client, objective_id, CHAMPION)
    champion_dr = None
    if champion is not None and champion != version:
        champion_dr = float(client.get_model_version(objective_id, champion).tags.get("dr", "nan"))
    low = candidate.tags.get("dr_ci_low")
    if low is None and not force:
        raise LearningError(f"version {version} has no recorded DR interval: use --force")
    result = promote(
        client,
        objective_id,
        version,
        candidate_ci_low=float(low) if low is not None else float("nan"),
        champion_value=champion_dr,
        force=force,
    )
    console.print(f"{objective_id} version {version} -> {result.alias}: {result.reason}")
    return result


def read_customer_ids(path: Path) -> list[str]:
    """Customer ids from a file: one a line, or a CSV with a ``customer_id`` column."""
    if not path.exists():
        raise InvalidInput(f"customers file {path} does not exist")
    text = path.read_text().splitlines()
    if text and "," in text[0] or (text and text[0].strip() == "customer_id"):
        frame = pd.read_csv(path, dtype=str)
        if "customer_id" not in frame:
            raise InvalidInput(f"{path}: a CSV needs a customer_id column")
        ids = frame["customer_id"].str.strip()
        empty = ids.isna() | (ids == "")
        if empty.any():
            rows = ", ".join([str(i + 1) for i, blank in enumerate(empty.tolist()) if blank][:5])
            raise InvalidInput(f"{path}: customer_id is empty in data row(s) {rows}")
        return ids.tolist()
    return [line.strip() for line in text if line.strip()]


def run_decide(
    *,
    settings: Settings,
    objective_id: str,
    customers: Path,
    out: Path,
    at: datetime | None,
    console: Console,
    workers: int = 1,
) -> int:
    """``decisioning decide``: a batch of decisions written as JSON lines, each one logged.

    With ``workers`` above 1 the batch is split across as many processes
    (:mod:`serving.batch_processes`); the lines keep the order of the list.
    """
    from serving.service import build_engine

    if workers < 1:
        raise InvalidInput(f"--workers: must be at least 1, got {workers}")
    ids = read_customer_ids(customers)
    if workers > 1:
        from decisioning.store import open_store
        from serving.batch_processes import ProcessBatch
        from training.registry import CHAMPION, alias_version, connect

        # the objective is checked first, on a store opened and closed here: the processes
        # are forked from this one, which must not run the threads of an engine (the modules
        # they need are imported once, here)
        with open_store(settings.resolved_database_url, create=True) as store:
            load_objective(store, objective_id)
        batch = ProcessBatch(
            lambda: build_engine(settings), ids, processes=workers, render=decision_line,
            objective_id=objective_id, as_of=at,
            prepare=lambda: alias_version(connect(settings), objective_id, CHAMPION),
        )  # fmt: skip
        return _write_lines(batch, out, len(ids), console)
    engine = build_engine(settings)
    try:
        engine.objective(objective_id)  # unknown objective: a clear error before any work
        chunks = engine.decide_chunks(ids, objective_id=objective_id, as_of=at)
        return _write_lines(([decision_line(d) for d in part] for part in chunks), out, len(ids),
                            console)  # fmt: skip
    finally:
        engine.close()  # the budget leased and not spent goes back
        engine.store.close()


def _write_lines(parts: Iterable[list[str]], out: Path, total: int, console: Console) -> int:
    count = 0
    with out.open("w") as fh, _progress(console) as progress:
        task = progress.add_task("deciding", total=total)
        for lines in parts:
            fh.writelines(lines)
            count += len(lines)
            progress.advance(task, len(lines))
    console.print(f"{count:,} decisions written to {out}")
    return count


def decision_line(decision: Any) -> str:
    """A decision as one line of the command line's output (JSON, with its newline)."""
    return orjson.dumps(decision_json(decision), option=orjson.OPT_APPEND_NEWLINE).decode()


def decision_json(decision: Any) -> dict[str, Any]:
    """A decision as a plain JSON object (the command line's output format)."""
    return {
        "decision_id": decision.decision_id,
        "customer_id": decision.customer_id,
        "decided_at": decision.decided_at.isoformat(),
        "objective": decision.objective_id,
        "objective_version": decision.objective_version,
        "action": decision.action.key,
        "channel": decision.action.channel.value,
        "send_at": decision.send_at.isoformat() if decision.send_at else None,
        "propensity": float(decision.propensity),
        "model_version": decision.model_version,
        "expected_value": None
        if decision.expected_value is None
        else float(decision.expected_value),
        "holdout": decision.holdout,
        "fallback": decision.fallback,
        "blocked": [
            {"action": b.action, "rule": b.rule, "reason": b.reason} for b in decision.blocked
        ],
        "explanation": decision.explanation,
    }
