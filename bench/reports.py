"""Reports' speed (issue #17, "Speed"): rebuilding the rollups of the inbox benchmark's data
set, every report and the dashboard over a 90-day range, what keeping the rollups current
costs inbound processing, and whether a history import moves any response-time figure.

Each figure is printed beside a baseline measured in the same run:

`rebuild`: bench/inbox's data set (its own `build`: 1,000,000 messages in 100,000
conversations, 50 agents in 5 teams, 3 numbers) spread over 90 days, with the report
facts the real code paths would have recorded for it (bench/reports_data.py says how;
`--fold` folds them per quarter hour, the best case). `rollup.rebuild` builds the
rollups from scratch, timed, then runs again as `puente reports rebuild` does on a live
data set (facts rolled up, rollups replaced), in one transaction each. Baseline:
`SELECT count(*)` of report_facts, and one plain read of all its rows.

`queries`: every report of `queries.REPORTS` for the last 90 local days, with no filter,
an agent's and a number's, and the dashboard as the owner and as a team agent: N times
each through a fresh read session, as a request would; median and p95 beside `SELECT 1`
through a fresh session.

`cost`: bench/process's measurement (its own functions: stored webhook events turned into
contacts, conversations and messages by `do_process_new_events`) as shipped, the facts
recorded and the rollup worker (`reports.worker.rollup_step` in the jobs Worker thread)
keeping up, until every fact is rolled up; against the same with `reports.facts.record`
replaced by a no-op and no rollup worker. Fresh schema per round, rounds alternate,
medians.

`history`: 100,000 messages of a coexistence number's history (chats of existing and new
customers, both directions, over the 90 days) stored as `history` webhooks and processed
by the ingest worker's step, then rolled up by the worker's step; every response-time
figure (first response, response, resolution; wall clock and business hours; count,
median, average, p90; overall and per agent) before and after.

    .venv/bin/python bench/reports.py [--quick] [--only rebuild|queries|cost|history]
        [--postgres postgresql+psycopg://postgres@127.0.0.1/puente_bench_reports]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
import zoneinfo
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

import puente.reports.facts as facts_module
from inbox import NOW
from process import _ensure_database, body_of, generate, make_channel, make_runtime, run_processing
from puente.accounts.gate import Actor, actor_scope, member_actor
from puente.accounts.models import Membership, User
from puente.conversations.models import Message
from puente.ingest.store import do_store_webhooks
from puente.jobs import REPORTS, Worker
from puente.reports.facts import Fact
from puente.reports.models import ReportFact, ReportRollup
from puente.reports.queries import REPORTS as REPORT_FUNCTIONS
from puente.reports.queries import Filters, durations, report
from puente.reports.rollup import rebuild
from puente.reports.worker import drain, rollup_step
from reports_data import CHUNK, ZONE, World, analyze, build_world, log, record_facts

TARGET_MS = 100.0
REBUILD_TARGET_S = 60.0
COST_TARGET = 5.0  # %


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


# -- 1. rebuild --------------------------------------------------------------------------------


def timed_rebuild(world: World) -> tuple[float, int]:
    start = time.perf_counter()
    with world.db.unit_of_work(scope=world.workspace_id) as session:
        read = rebuild(session, world.workspace_id)
    return time.perf_counter() - start, read


def bench_rebuild(world: World, rebuilds: int) -> None:
    db = world.db
    start = time.perf_counter()
    with db.read(unscoped="benchmark: the baseline scan") as session:
        count = session.scalar(select(func.count()).select_from(ReportFact)) or 0
    scan = time.perf_counter() - start
    start, read_rows = time.perf_counter(), 0
    with db.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=CHUNK).execute(
            select(ReportFact.__table__)
        )
        for part in result.partitions():
            read_rows += len(part)
    plain = time.perf_counter() - start
    log(f"rebuild: {count:,} report facts")
    log(f"  baseline: SELECT count(*)          {scan:7.2f} s")
    log(f"  baseline: read every fact's row    {plain:7.2f} s  ({read_rows:,} rows)")
    for n in range(rebuilds):
        elapsed, read = timed_rebuild(world)
        with db.read(unscoped="benchmark") as session:
            rollups = session.scalar(select(func.count()).select_from(ReportRollup)) or 0
        what = "from scratch (fresh facts)" if n == 0 else "again (puente reports rebuild)"
        log(
            f"  rebuild {what:<30} {elapsed:7.2f} s  {read / elapsed:9,.0f} facts/s  "
            f"{rollups:,} rollup rows  (target < {REBUILD_TARGET_S:.0f} s: {verdict(elapsed < REBUILD_TARGET_S)})"
        )
    analyze(db, "report_rollups")


# -- 2. queries --------------------------------------------------------------------------------


def timings(call: Callable[[], Any], n: int) -> list[float]:
    for _ in range(3):
        call()  # warm caches and the pool
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def dashboard_function() -> Callable[..., Any] | None:
    """reports.dashboard's `dashboard(session, actor)`, when it is there."""
    try:
        module = importlib.import_module("puente.reports.dashboard")
    except ImportError:
        return None
    found: Callable[..., Any] | None = getattr(module, "dashboard", None)
    return found


def actor_of(world: World, user_id: int) -> Actor:
    with world.db.read(scope=world.workspace_id) as session:
        user = session.get(User, user_id)
        membership = session.scalar(
            select(Membership).where(
                Membership.user_id == user_id, Membership.workspace_id == world.workspace_id
            )
        )
        assert user is not None and membership is not None
        actor = member_actor(session, user, membership, world.workspace_id)
        # Kept as loaded: the read session's rollback would expire them.
        session.expunge(user)
        session.expunge(membership)
    assert actor is not None
    return actor


def ninety_days(world: World) -> Filters:
    end = NOW.astimezone(zoneinfo.ZoneInfo(ZONE)).date()
    return Filters(world.workspace_id, end - dt.timedelta(days=89), end)


def busiest_agent(world: World) -> int:
    with world.db.read(scope=world.workspace_id) as session:
        row = session.execute(
            select(ReportRollup.agent_id, func.sum(ReportRollup.count))
            .where(
                ReportRollup.workspace_id == world.workspace_id,
                ReportRollup.metric == "resolved",
                ReportRollup.agent_id != 0,
            )
            .group_by(ReportRollup.agent_id)
            .order_by(func.sum(ReportRollup.count).desc())
            .limit(1)
        ).first()
    return int(row[0]) if row else world.agent_ids[0]


def bench_queries(world: World, repeat: int) -> None:
    db, ws = world.db, world.workspace_id
    whole = ninety_days(world)
    agent = busiest_agent(world)
    variants = {
        "all": whole,
        f"agent {agent}": replace(whole, agent_id=agent),
        f"number {world.channel_ids[0]}": replace(whole, channel_ids=(world.channel_ids[0],)),
    }
    log(
        f"queries: {whole.start} to {whole.end} ({len(whole.days)} local days, {ZONE}), "
        f"{repeat} times each through a fresh read session, one at a time"
    )

    def select_one() -> None:
        with db.read(scope=ws) as session:
            session.execute(text("SELECT 1"))

    base = timings(select_one, repeat)
    log(
        f"  {'baseline: SELECT 1':<40} median {statistics.median(base):7.2f} ms   p95 {pct(base, 0.95):7.2f} ms"
    )
    worst = 0.0
    for key in REPORT_FUNCTIONS:
        for name, f in variants.items():

            def call(f: Filters = f, key: str = key) -> None:
                with db.read(scope=ws) as session:
                    report(session, key, f)

            times = timings(call, repeat)
            p95 = pct(times, 0.95)
            worst = max(worst, p95)
            log(
                f"  {key + ', ' + name:<40} median {statistics.median(times):7.2f} ms   "
                f"p95 {p95:7.2f} ms   {verdict(p95 < TARGET_MS)}"
            )
    dashboard = dashboard_function()
    if dashboard is None:
        log("  dashboard: puente.reports.dashboard.dashboard not found, not timed")
    else:
        agent_user = world.agent_ids[0]
        for name, user_id in (("owner", world.owner_id), (f"agent {agent_user}", agent_user)):
            actor = actor_of(world, user_id)

            def show(actor: Actor = actor) -> None:
                with db.read(scope=actor_scope(actor)) as session:
                    dashboard(session, actor)

            times = timings(show, repeat)
            p95 = pct(times, 0.95)
            worst = max(worst, p95)
            log(
                f"  {'dashboard, ' + name:<40} median {statistics.median(times):7.2f} ms   "
                f"p95 {p95:7.2f} ms   {verdict(p95 < TARGET_MS)}"
            )
    log(f"  worst p95: {worst:.1f} ms (target < {TARGET_MS:.0f} ms: {verdict(worst < TARGET_MS)})")


# -- 3. what keeping the rollups current costs -------------------------------------------------


@contextmanager
def facts_off() -> Iterator[None]:
    """`reports.facts.record` as a no-op everywhere it is called from (the baseline)."""
    original = facts_module.record

    def nothing(_session: Any, _fact: Fact) -> None:
        return None

    patched = [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("puente.") and getattr(module, "record", None) is original
    ]
    for module in patched:
        module.record = nothing  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in patched:
            module.record = original  # type: ignore[attr-defined]


def cost_round(
    data_dir: Path, url: str | None, bodies: list[bytes], batch: int, shipped: bool
) -> tuple[float, int, int, int]:
    """One fresh schema: (seconds until processed and rolled up, messages stored, facts,
    facts not rolled up)."""
    runtime = make_runtime(data_dir, url)
    make_channel(runtime)
    db = runtime.db
    with db.unit_of_work(unscoped="benchmark") as session:
        do_store_webhooks(session, bodies)
    if shipped:
        worker = Worker("puente-reports", REPORTS, lambda: rollup_step(db), idle_seconds=0.5)
        worker.start()
        elapsed = run_processing(runtime, batch)
        start = time.perf_counter()
        worker.stop()
        worker.join()
        drain(db)  # what the worker had not caught up with yet
        elapsed += time.perf_counter() - start
    else:
        with facts_off():
            elapsed = run_processing(runtime, batch)
    with db.read(unscoped="benchmark") as session:
        written = session.scalar(select(func.count()).select_from(ReportFact)) or 0
        pending = (
            session.scalar(
                select(func.count()).select_from(ReportFact).where(ReportFact.rolled_up.is_(False))
            )
            or 0
        )
        stored = session.scalar(select(func.count(func.distinct(Message.wamid)))) or 0
    db.dispose()
    return elapsed, stored, written, pending


def bench_cost(args: argparse.Namespace, tmp: Path) -> bool:
    posts = generate(args.cost_messages, args.cost_contacts, 10)
    rng = random.Random(11)
    resent = rng.sample(range(len(posts)), int(len(posts) * 0.05))
    bodies = [body_of(p) for p in posts] + [body_of(posts[i], retry=True) for i in resent]
    cost_round(tmp / "cost-warm", args.postgres, bodies[:20], 50, True)  # imports, caches
    log(
        f"cost: bench/process's {args.cost_messages:,} messages in {len(posts):,} POSTs "
        f"(+{len(resent)} resent) from {args.cost_contacts:,} contacts, batch 50, "
        f"{args.rounds} rounds each, alternating"
    )
    rates: dict[bool, list[float]] = {False: [], True: []}
    ok = True
    for r in range(args.rounds):
        for shipped in (False, True) if r % 2 == 0 else (True, False):
            kind = "shipped" if shipped else "baseline"
            elapsed, stored, written, pending = cost_round(
                tmp / f"cost-{r}-{kind}", args.postgres, bodies, 50, shipped
            )
            rate = args.cost_messages / elapsed
            rates[shipped].append(rate)
            log(
                f"  round {r + 1} {kind:8}: {rate:7.0f} msg/s  ({elapsed:.2f} s; "
                f"{written:,} facts, {pending} not rolled up)"
            )
            if stored != args.cost_messages or (written == 0) == shipped or pending:
                log(
                    f"    !! stored {stored} of {args.cost_messages}; facts left out or not rolled up"
                )
                ok = False
    base, loaded = statistics.median(rates[False]), statistics.median(rates[True])
    loss = (1 - loaded / base) * 100
    log(f"  baseline, no facts, no rollup worker: {base:7.0f} msg/s (median)")
    log(f"  facts recorded, rollups kept current: {loaded:7.0f} msg/s (median)")
    log(
        f"  cost: {loss:5.1f} %  (target: at most {COST_TARGET:.0f} %: {verdict(loss <= COST_TARGET)})"
    )
    return ok


# -- 4. a history import leaves response times alone -------------------------------------------

TIMED = ("first_response", "response_time", "resolution_time")


def response_figures(world: World) -> dict[str, Any]:
    """Every response-time figure of the 90 days: overall and per agent, by the wall
    clock and in business hours, and the reports that show them."""
    f = ninety_days(world)
    out: dict[str, Any] = {}
    with world.db.read(scope=world.workspace_id) as session:
        for metric in TIMED:
            for suffix in ("", "_bh"):
                name = metric + suffix
                out[name] = durations(session, f, name).get(())
                out[name + " per agent"] = sorted(durations(session, f, name, ["agent_id"]).items())
                out[name + " per source"] = sorted(
                    durations(session, f, name, ["source"], use_source=False).items()
                )
        for key in ("responses", "resolutions", "leaderboard"):
            shown = report(session, key, f)
            out[f"report {key}"] = (shown.figures, shown.tables, shown.chart)
        counts = report(session, "conversations", f).figures
        out["conversations"] = ", ".join(f"{c.key} {c.value or 0:,.0f}" for c in counts)
        messages = {x.key: x.value for x in report(session, "messages", f).figures}
    return out | {"history messages": messages.get("source_history", 0)}


def history_bodies(world: World, total: int, per_chat: int = 20) -> list[bytes]:
    """`total` messages of the number's app history as Meta sends them: chunks of 1,000
    messages, half the chats with customers Puente knows on this number, half new."""
    rng = random.Random(23)
    chats = max(total // per_chat, 1)
    known = [f"57300{i:07d}" for i in range(0, 3 * chats, 3)]  # identities on number 0
    threads = []
    n = 0
    for c in range(chats):
        wa_id = known[c // 2] if c % 2 == 0 else f"57310{c:07d}"
        messages = []
        for _ in range(per_chat):
            at = NOW - dt.timedelta(seconds=rng.uniform(3600, 89 * 86400))
            mine = rng.random() < 0.45
            message: dict[str, Any] = {
                "from": world.display if mine else wa_id,
                "id": f"wamid.HISTORY{n:09d}",
                "timestamp": str(int(at.timestamp())),
                "type": "text",
                "text": {"body": "Gracias, ya me llegó" if not mine else "Con gusto"},
                "history_context": {"status": "READ"},
            }
            if mine:
                message["to"] = wa_id
            messages.append(message)
            n += 1
        threads.append({"id": wa_id, "messages": messages})
    per_chunk = max(1000 // per_chat, 1)
    chunks = [threads[i : i + per_chunk] for i in range(0, len(threads), per_chunk)]
    bodies = []
    for order, chunk in enumerate(chunks, 1):
        value = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": world.display,
                "phone_number_id": world.phone_number_id,
            },
            "history": [
                {
                    "metadata": {
                        "phase": 1,
                        "chunk_order": order,
                        "progress": order * 100 // len(chunks),
                    },
                    "threads": chunk,
                }
            ],
        }
        envelope = {
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "history", "value": value}]}],
        }
        bodies.append(json.dumps(envelope).encode())
    return bodies


def shown(value: Any) -> str:
    if value is None:
        return "-"
    return f"n={value.count:,} median {fmt(value.median)} avg {fmt(value.average)} p90 {fmt(value.p90)}"


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:,.1f} s"


def bench_history(world: World, total: int) -> bool:
    before = response_figures(world)
    bodies = history_bodies(world, total)
    start = time.perf_counter()
    with world.db.unit_of_work(unscoped="benchmark") as session:
        do_store_webhooks(session, bodies)
    imported = run_processing(world.runtime, 50)
    start_rollup = time.perf_counter()
    drain(world.db)
    rolled = time.perf_counter() - start_rollup
    log(
        f"history: {total:,} messages in {len(bodies)} history webhooks, stored and imported in "
        f"{time.perf_counter() - start - rolled:.1f} s (processing {imported:.1f} s), "
        f"rolled up by the worker's step in {rolled:.1f} s"
    )
    after = response_figures(world)
    added = (after["history messages"] or 0) - (before["history messages"] or 0)
    log(
        f"  messages by source, history: {before['history messages']:,.0f} -> {after['history messages']:,.0f} (+{added:,.0f})"
    )
    log(f"  conversations: {before['conversations']} -> {after['conversations']}")
    for metric in TIMED:
        for suffix in ("", "_bh"):
            name = metric + suffix
            log(f"  {name:<20} before {shown(before[name])}")
            log(f"  {'':<20} after  {shown(after[name])}")
    changed = [k for k in before if k != "history messages" and before[k] != after[k]]
    log(
        f"  unchanged: {'yes' if not changed else 'no'}"
        + (f" ({', '.join(changed)})" if changed else "")
    )
    return not changed and added == total


# -- main --------------------------------------------------------------------------------------

QUICK: dict[str, Any] = {
    "messages": 20_000,
    "conversations": 2_000,
    "repeat": 20,
    "history": 2_000,
    "cost_messages": 1_000,
    "cost_contacts": 100,
    "rounds": 2,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke size")
    parser.add_argument("--only", choices=("rebuild", "queries", "cost", "history"))
    parser.add_argument("--postgres", help="a PostgreSQL URL (its tables are dropped and rebuilt)")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument(
        "--fold",
        action="store_true",
        help="fold countable facts per quarter hour across the whole data set",
    )
    parser.add_argument("--rebuilds", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=50, help="calls per report and filter")
    parser.add_argument("--history", type=int, default=100_000, help="history messages imported")
    parser.add_argument("--cost-messages", type=int, default=20_000)
    parser.add_argument("--cost-contacts", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    if parser.parse_known_args()[0].quick:  # sizes given with --quick still count
        parser.set_defaults(**QUICK)
    args = parser.parse_args()
    if args.postgres:
        _ensure_database(args.postgres)
    engine = "PostgreSQL" if args.postgres else "SQLite"
    log(f"reports: {engine}, cores: {os.cpu_count()}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="puente-bench-reports-") as tmp:
        # First: its rounds drop and create the schema of the same database.
        if args.only in (None, "cost"):
            ok = bench_cost(args, Path(tmp)) and ok
        if args.only == "cost":
            return 0 if ok else 1
        world = build_world(args, Path(tmp))
        record_facts(world, args.fold)
        bench_rebuild(world, args.rebuilds if args.only in (None, "rebuild") else 1)
        if args.only in (None, "queries"):
            bench_queries(world, args.repeat)
        if args.only in (None, "history"):
            ok = bench_history(world, args.history) and ok
        world.db.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
