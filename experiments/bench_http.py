"""Benchmark of the decision API over HTTP on loopback, one uvicorn worker.

The service (``serving.service.create_service_app``, on a SQLite store loaded with a simulated
history and the premium upsell objective, its champion trained and registered in MLflow unless
``--no-champion``) and a bare FastAPI app whose ``POST /v1/decisions`` returns a constant JSON
(a sync endpoint, as the service's) are started in turn, each in a subprocess on a free port.
Each gets the same load, from 127.0.0.1 only, bounded in count and time:

* a fixed rate (default 300 requests/s for 20 s, open loop: latency counts from the moment a
  request was due, so a stalled server is not hidden): p50, p99, errors; the first
  ``--warmup-seconds`` at that rate after the server started are reported apart (``warmup``);
* a closed loop of ``--connections`` connections for ``--max-seconds``: the sustained maximum
  throughput, with ``wrk`` when installed, else an asyncio client; ``--rounds`` rounds per
  server, taken in turn once both run, and the median round of each reported.

The ratio of the service's to the bare app's maximum throughput is measured in the same run, on
the median rounds (each round's ratio is reported too).

Then batches: ``POST /v1/decisions/batch`` for a list of ``--batch-customers`` customers and for
the objective's whole segment, read as a client reads the stream, against the same batches
decided by the service's engine in a process of their own (``decide_many``, no HTTP), each on
its own copy of the store taken before any decision: customers per second, and the ratio.

    python -m experiments.bench_http --json data/bench/http.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from experiments.bench import machine_info
from experiments.closed_loop.setup import copy_database

KEY = "bench-orchestrator-key"
PATH = "/v1/decisions"
OBJECTIVE = "premium_upsell"
#: the store as prepared, before the single calls' decisions (the batches start from it)
BATCH_PRISTINE = "batch-pristine.db"
TARGET_P99_MS, TARGET_RATIO = 15.0, 0.5
TIMEOUT_S = 10.0  # longest wait for one response


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the servers (run in a child process) ---------------------------------------------------


def bare_app() -> Any:
    """The floor: FastAPI answering a constant decision, nothing else."""
    from fastapi import FastAPI

    app = FastAPI()
    answer = {"decision_id": "0", "action": {"key": "none"}, "propensity": 1.0}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(PATH)
    def decide() -> dict[str, Any]:
        return answer

    return app


def serve(kind: str, port: int) -> None:
    """Run one server in this process until it is terminated."""
    import uvicorn

    if kind == "service":
        from decisioning.settings import Settings
        from serving.service import create_service_app

        app = create_service_app(Settings())
    else:
        app = bare_app()
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)


class Server:
    """A server in a child process on a free loopback port, stopped on exit."""

    def __init__(self, kind: str, env: dict[str, str]) -> None:
        self.kind, self.port, self.env = kind, _free_port(), env
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        args = [sys.executable, "-m", "experiments.bench_http", "--serve", self.kind,
                "--port", str(self.port)]  # fmt: skip
        self.process = subprocess.Popen(args, env={**os.environ, **self.env})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the {self.kind} server exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the {self.kind} server did not answer within 120 s")

    def __exit__(self, *exc: Any) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- the load ---------------------------------------------------------------------------------


class Connections:
    """Keep-alive HTTP/1.1 connections to a loopback server, for POSTs of JSON bodies.

    A few lines of asyncio instead of a full client: on a small machine the load generator
    shares the cores with the server, and the lighter it is the less it skews the figures.
    """

    def __init__(self, port: int, size: int) -> None:
        self.port, self.size = port, size
        self.free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.head = (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        ).encode()

    async def __aenter__(self) -> Connections:
        for _ in range(self.size):
            self.free.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))
        return self

    async def __aexit__(self, *exc: Any) -> None:
        while not self.free.empty():
            self.free.get_nowait()[1].close()

    async def post(self, body: bytes) -> int:
        """POST ``body``; the response's status (0 when the connection failed)."""
        reader, writer = await self.free.get()
        try:
            async with asyncio.timeout(TIMEOUT_S):  # a timeout is an OSError: reconnect
                writer.write(self.head % len(body) + body)
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
            return status
        except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            return 0
        finally:
            self.free.put_nowait((reader, writer))


def _ms(seconds: float) -> float | None:
    """Milliseconds, or None for a request never answered."""
    return float(seconds) * 1e3 if np.isfinite(seconds) else None


async def fixed_rate(port: int, bodies: list[bytes], rate: float, seconds: float) -> dict[str, Any]:
    """Open loop: request i is due at i / rate; latency counts from when it was due."""
    n = max(1, int(rate * seconds))
    latency = np.full(n, np.nan)
    errors = 0
    async with Connections(port, 64) as pool:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.1

        async def one(i: int) -> None:
            nonlocal errors
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            errors += await pool.post(bodies[i % len(bodies)]) != 200
            latency[i] = loop.time() - due

        tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
        # bounded in time: requests still unanswered well after the last was due are dropped
        _, late = await asyncio.wait(tasks, timeout=3 * seconds + 2 * TIMEOUT_S + 1)
        for task in late:
            task.cancel()
        errors += len(late)
        elapsed = loop.time() - start
    latency[np.isnan(latency)] = np.inf  # unanswered: slower than anything measured
    return {
        "requests": n,
        "unanswered": len(late),
        "rate": rate,
        "achieved_rps": n / elapsed,
        "p50_ms": _ms(np.percentile(latency, 50)),
        "p90_ms": _ms(np.percentile(latency, 90)),
        "p99_ms": _ms(np.percentile(latency, 99)),
        "max_ms": _ms(latency.max()),
        "errors": errors,
    }


async def closed_loop(
    port: int, bodies: list[bytes], connections: int, seconds: float
) -> dict[str, Any]:
    """``connections`` clients sending back to back for ``seconds``: completed requests/s."""
    done = errors = 0
    async with Connections(port, connections) as pool:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds

        async def worker(w: int) -> None:
            nonlocal done, errors
            i = w
            while loop.time() < end:
                errors += await pool.post(bodies[i % len(bodies)]) != 200
                done += 1
                i += connections

        start = loop.time()
        await asyncio.gather(*(worker(w) for w in range(connections)))
        elapsed = loop.time() - start
    return {"tool": "asyncio", "requests": done, "rps": done / elapsed, "errors": errors}


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "%s"
local bodies = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format(nil, nil, nil, bodies[(i %% #bodies) + 1])
end
"""


def wrk_loop(url: str, bodies: list[bytes], connections: int, seconds: float) -> dict[str, Any]:
    """The closed loop through ``wrk`` (one thread): it costs the machine far less than Python."""
    quoted = ",".join(json.dumps(b.decode()) for b in bodies[:2000])
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_WRK_SCRIPT % (KEY, quoted))
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", f.name,
             f"{url}{PATH}"],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:.*?(\d+).*?(\d+).*?(\d+).*?(\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return {"tool": "wrk", "requests": total, "rps": rps, "errors": errors}


def measure(server: Server, bodies: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, then the fixed rate, against one running server."""
    # The first seconds after start are slower (lazily built predictors, caches, pages): they
    # are measured apart, at the same rate, and the fixed-rate figures are the steady state.
    warmup = asyncio.run(fixed_rate(server.port, bodies, args.rate, args.warmup_seconds))
    fixed = asyncio.run(fixed_rate(server.port, bodies, args.rate, args.seconds))
    return {"warmup": warmup, "fixed": fixed}


def saturate(server: Server, bodies: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    """The closed loop against one running server: its maximum throughput."""
    if shutil.which("wrk") and not args.no_wrk:
        try:
            return wrk_loop(server.url, bodies, args.connections, args.max_seconds)
        except (subprocess.SubprocessError, AttributeError, ValueError) as err:
            print(f"wrk failed ({err}); measuring with the asyncio client instead")
    return asyncio.run(closed_loop(server.port, bodies, args.connections, args.max_seconds))


def alternate_max(
    servers: dict[str, Server], bodies: list[bytes], args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Maximum throughput of each server in ``args.rounds`` rounds taken in turn; the median.

    On a shared machine the capacity drifts over a minute: taking the servers in turn, both
    running, exposes them to the same drift, and the median round of each is reported.
    """
    rounds: dict[str, list[dict[str, Any]]] = {kind: [] for kind in servers}
    for _ in range(args.rounds):
        for kind, server in servers.items():
            rounds[kind].append(saturate(server, bodies, args))
    out = {}
    for kind, runs in rounds.items():
        median = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
        out[kind] = {**median, "rounds_rps": [r["rps"] for r in runs]}
    return out


# -- batches -----------------------------------------------------------------------------------


def stream_batch(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/decisions/batch`` read to its end: lines, seconds, customers per second."""
    start = time.perf_counter()
    lines, first = 0, None
    headers = {"X-API-Key": KEY}
    with httpx.stream("POST", f"{url}/v1/decisions/batch", json=body, headers=headers,
                      timeout=600) as response:  # fmt: skip
        if response.status_code != 200:
            raise RuntimeError(f"batch answered {response.status_code}: {response.read()!r}")
        for piece in response.iter_raw():
            lines += piece.count(b"\n")
            if first is None:
                first = time.perf_counter() - start
    seconds = time.perf_counter() - start
    return {"customers": lines, "seconds": seconds, "per_s": lines / seconds,
            "first_line_ms": None if first is None else first * 1e3}  # fmt: skip


def local_batch(ask: Path) -> None:
    """The batch ``ask`` (a JSON file: ``ids``, or null for the segment, ``moment``, ``out``)
    decided by the service's engine in this process, without HTTP; its figures go to ``out``.

    Run in a fresh process (``--local-batch``), as the server is, on the settings of the
    environment: the benchmark's own process holds the simulated history.
    """
    from decisioning.settings import Settings
    from serving.service import build_engine

    spec = json.loads(ask.read_text())
    ids, moment = spec["ids"], datetime.fromisoformat(spec["moment"])
    engine = build_engine(Settings())
    try:
        start = time.perf_counter()
        if ids is None:
            asked = engine.segment_members(OBJECTIVE, as_of=moment)
            made = engine.decide_many(asked, objective_id=OBJECTIVE, as_of=moment)
        else:
            made = engine.decide_many(ids, as_of=moment)
        count = sum(1 for _ in made)
        seconds = time.perf_counter() - start
    finally:
        engine.close()
        engine.store.close()
    result = {"customers": count, "seconds": seconds, "per_s": count / seconds}
    Path(spec["out"]).write_text(json.dumps(result))


def _local_batch(ask: dict[str, Any], env: dict[str, str], folder: Path) -> dict[str, Any]:
    """:func:`local_batch` in a child process; its figures."""
    ask_file, out = folder / "ask.json", folder / "local.json"
    ask_file.write_text(json.dumps({**ask, "out": str(out)}))
    args = [sys.executable, "-m", "experiments.bench_http", "--local-batch", str(ask_file)]
    subprocess.run(args, env={**os.environ, **env}, check=True, timeout=1200)
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def measure_batches(
    data_dir: Path, env: dict[str, str], ids: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    """Each batch over HTTP and in process, each run on a fresh copy of the store."""
    pristine = data_dir / BATCH_PRISTINE
    moment = datetime.now(UTC).replace(microsecond=0)
    asks: dict[str, list[str] | None] = {"list": ids[: args.batch_customers], "segment": None}
    out: dict[str, Any] = {}
    for name, listed in asks.items():
        copies = {way: data_dir / f"batch-{name}-{way}.db" for way in ("http", "local")}
        for copy in copies.values():
            copy_database(pristine, copy)
        body: dict[str, Any] = {"as_of": moment.isoformat()}
        body.update({"objective": OBJECTIVE} if listed is None else {"customer_ids": listed})
        served_env = {**env, "DECISIONING_DATABASE_URL": f"sqlite:///{copies['http']}"}
        with Server("service", served_env) as server:
            http = stream_batch(server.url, body)
        local_env = {**env, "DECISIONING_DATABASE_URL": f"sqlite:///{copies['local']}"}
        local = _local_batch({"ids": listed, "moment": moment.isoformat()}, local_env, data_dir)
        out[name] = {"http": http, "in_process": local, "ratio": http["per_s"] / local["per_s"]}
    return out


# -- the world the service serves -------------------------------------------------------------


def prepare(data_dir: Path, customers: int, days: int, champion: bool, seed: int) -> list[str]:
    """Load a simulated history into the store, register the objective, train its champion."""
    from decisioning.history import History
    from decisioning.settings import Settings
    from decisioning.store import open_store
    from experiments.quality import example_objective
    from experiments.simulator import SimulationConfig, simulate

    first = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days + 1)
    history = simulate(SimulationConfig(customers=customers, days=days, seed=seed, start=first))
    settings = Settings(data_dir=data_dir, seed=seed)
    store = open_store(settings.resolved_database_url, create=True)
    frames = {"customers": history.customers, "contacts": history.contacts,
              "events": history.events}  # fmt: skip
    store.ingest_history(History.from_frames(**frames))
    objective = example_objective(OBJECTIVE).activate()
    store.save_objective(objective.model_dump(mode="json"))
    store.close()
    if champion:
        from training.pipeline import train

        train(objective=objective, **frames, settings=settings, force=True)
    basic = history.customers.loc[history.customers["plan"] == "basic", "customer_id"]
    return [str(c) for c in basic]


@contextlib.contextmanager
def _collector_paused() -> Any:
    """No garbage collection in this process while it measures (what exists is frozen)."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both servers under the same load; the report."""
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        data_dir = Path(tmp)
        start = time.perf_counter()
        ids = prepare(data_dir, args.customers, args.days, args.champion, args.seed)
        setup = time.perf_counter() - start
        if args.batch_customers:  # the store before any decision, for the batches
            copy_database(data_dir / "decisioning.db", data_dir / BATCH_PRISTINE)
        rng = np.random.default_rng(args.seed)
        bodies = [json.dumps({"customer_id": ids[i]}).encode()
                  for i in rng.integers(0, len(ids), 5000)]  # fmt: skip
        env = {"DECISIONING_DATA_DIR": str(data_dir), "DECISIONING_API_KEYS": f"orchestrator:{KEY}",
               "DECISIONING_SEED": str(args.seed)}  # fmt: skip
        with contextlib.ExitStack() as running:
            # the load generator must not pause: its own garbage collection (the set-up left
            # hundreds of thousands of objects) would be counted as the servers' latency
            running.enter_context(_collector_paused())
            servers, results = {}, {}
            for kind in ("bare", "service"):  # each measured from its start, the other idle
                servers[kind] = running.enter_context(Server(kind, env))
                results[kind] = measure(servers[kind], bodies, args)
            for kind, most in alternate_max(servers, bodies, args).items():
                results[kind]["max"] = most
        # batches after the single calls' servers stopped, each on a fresh copy of the store
        batches = measure_batches(data_dir, env, ids, args) if args.batch_customers else None
    service_max, bare_max = results["service"]["max"]["rps"], results["bare"]["max"]["rps"]
    per_round = [
        s / b
        for s, b in zip(
            results["service"]["max"]["rounds_rps"],
            results["bare"]["max"]["rounds_rps"],
            strict=True,
        )
        if b
    ]
    return {
        "customers": args.customers,
        "days": args.days,
        "champion": args.champion,
        "rate": args.rate,
        "seconds": args.seconds,
        "warmup_seconds": args.warmup_seconds,
        "connections": args.connections,
        "setup_s": setup,
        **results,
        "max_throughput_ratio": service_max / bare_max if bare_max else None,
        "max_throughput_ratio_rounds": per_round,
        "batches": batches,
        "targets": {"p99_ms_at_rate": TARGET_P99_MS, "max_throughput_ratio": TARGET_RATIO},
        "machine": machine_info(),
    }


def print_table(r: dict[str, Any]) -> None:
    print(
        f"HTTP on loopback, one uvicorn worker: {r['customers']:,} customers, "
        f"{'champion' if r['champion'] else 'rule-based fallback'} policy; "
        f"{r['rate']:.0f} req/s for {r['seconds']:.0f} s, max with {r['connections']} connections "
        f"({r['service']['max']['tool']})"
    )
    print(f"{'app':<9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
          f"{'max req/s':>11}{'errors':>8}")  # fmt: skip

    def ms(value: float | None) -> str:
        return "never" if value is None else f"{value:.2f}"

    for kind in ("bare", "service"):
        f, m = r[kind]["fixed"], r[kind]["max"]
        print(
            f"{kind:<9}{ms(f['p50_ms']):>9}{ms(f['p90_ms']):>9}{ms(f['p99_ms']):>9}"
            f"{ms(f['max_ms']):>9}{f['errors']:>8}{m['rps']:>11,.0f}{m['errors']:>8}"
        )
    ratio = r["max_throughput_ratio"]
    rounds = ", ".join(f"{x:.3f}" for x in r.get("max_throughput_ratio_rounds", []))
    print(
        f"service / bare max throughput: {ratio:.3f} of the median rounds (each round: {rounds}; "
        f"target >= {TARGET_RATIO}); "
        f"service p99 at {r['rate']:.0f} req/s: {ms(r['service']['fixed']['p99_ms'])} ms "
        f"(target <= {TARGET_P99_MS} ms); load average {r['machine']['load_average_1m']} on "
        f"{r['machine']['cores']} cores, client and server sharing them"
    )
    for name, b in (r.get("batches") or {}).items():
        what = "the objective's segment" if name == "segment" else "a list"
        http, local = b["http"], b["in_process"]
        print(
            f"batch for {what}: {http['customers']:,} customers over HTTP at {http['per_s']:,.0f}/s "
            f"(first line after {ms(http['first_line_ms'])} ms), in process at "
            f"{local['per_s']:,.0f}/s: HTTP / in process {b['ratio']:.3f}"
        )
    warm = r["service"].get("warmup")
    if warm:
        print(
            f"service in its first {r.get('warmup_seconds', 0):.0f} s after start at the same rate: "
            f"p50 {ms(warm['p50_ms'])} ms, p99 {ms(warm['p99_ms'])} ms, max {ms(warm['max_ms'])} ms"
        )


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--rate", type=float, default=300.0, help="fixed rate, requests/s")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration at the fixed rate")
    parser.add_argument(
        "--warmup-seconds", type=float, default=5.0, help="at the fixed rate, before measuring"
    )
    parser.add_argument("--connections", type=int, default=32, help="closed-loop connections")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="closed-loop duration")
    parser.add_argument(
        "--rounds", type=int, default=3, help="closed-loop rounds per server, taken in turn"
    )
    parser.add_argument("--champion", action=argparse.BooleanOptionalAction, default=True,
                        help="train and register a champion (else the rule-based fallback)")  # fmt: skip
    parser.add_argument(
        "--no-wrk", action="store_true", help="use the Python client even if wrk is"
    )
    parser.add_argument(
        "--batch-customers", type=int, default=10_000,
        help="customers listed in the batch measured (the service's batch_limit); 0: no batches",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small and short, for a smoke run")
    parser.add_argument("--json", type=Path, default=Path("data/bench/http.json"))
    parser.add_argument("--serve", choices=("service", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--local-batch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return None
    if args.local_batch:
        local_batch(args.local_batch)
        return None
    if args.quick:  # small and short defaults; values given explicitly are kept
        quick = {"customers": 500, "days": 7, "champion": False, "rate": 100.0, "seconds": 3.0,
                 "warmup_seconds": 1.0,
                 "max_seconds": 3.0, "rounds": 1, "batch_customers": 200}  # fmt: skip
        for name, value in quick.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    report = run(args)
    print_table(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
