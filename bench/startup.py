"""Process start-up: the CPU a `puente` command and a `puente worker` spend before doing
anything, with the bytecode caches `make install` writes and, as the same-run baseline,
without them (PYTHONPYCACHEPREFIX at an empty folder: every import compiles its source,
as it did when PYTHONDONTWRITEBYTECODE kept the caches from ever being written).

    .venv/bin/python bench/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def command_cpu(env: dict[str, str]) -> float:
    """CPU of `puente --help`, from the kernel's accounting of the finished child."""
    before = os.times()
    subprocess.run([str(BIN / "puente"), "--help"], env=env, check=True, stdout=subprocess.DEVNULL)
    after = os.times()
    return (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )


def worker_cpu(env: dict[str, str]) -> float:
    """CPU of `puente worker` from launch until it says its workers are running."""
    proc = subprocess.Popen(
        [str(BIN / "puente"), "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            if line.startswith("running "):
                return _cpu_of(proc.pid)
            if time.monotonic() > deadline:
                break
        raise RuntimeError("the worker never said it was running")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data, tempfile.TemporaryDirectory() as empty:
        base = dict(os.environ, PUENTE_DATA_DIR=data, PUENTE_LOG_LEVEL="WARNING")
        base.pop("PUENTE_DATABASE_URL", None)
        subprocess.run([str(BIN / "puente"), "migrate"], env=base, check=True, capture_output=True)
        cached = dict(base)
        cached.pop("PYTHONPYCACHEPREFIX", None)
        uncached = dict(base, PYTHONPYCACHEPREFIX=empty, PYTHONDONTWRITEBYTECODE="1")
        rows = []
        for name, measure in (("puente --help", command_cpu), ("puente worker", worker_cpu)):
            with_caches, without = [], []
            for _ in range(args.runs):  # interleaved, so a noisy moment hits both
                without.append(measure(uncached))
                with_caches.append(measure(cached))
            rows.append((name, statistics.median(without), statistics.median(with_caches)))
    print(f"CPU seconds to start, median of {args.runs} (SQLite, {os.cpu_count()} CPUs)")
    print(f"{'':16s} {'no caches':>10s} {'caches':>8s} {'ratio':>6s}")
    for name, without_s, with_s in rows:
        print(f"{name:16s} {without_s:10.2f} {with_s:8.2f} {without_s / with_s:6.2f}")


if __name__ == "__main__":
    main()
