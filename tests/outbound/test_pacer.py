"""The lane's pacer: never more than `rate` requests reach Meta in any second, on an
absolute schedule that a late send does not push back."""

from __future__ import annotations

import random

import pytest

from puente.outbound.outbox.lanes import Pacer


def _window_counts(starts: list[float], window: float) -> int:
    """Most starts in any half-open window of `window` seconds (the sandbox's count)."""
    worst, lo = 0, 0
    for hi, t in enumerate(starts):
        while t - starts[lo] >= window:
            lo += 1
        worst = max(worst, hi - lo + 1)
    return worst


def test_sends_are_spread_evenly_with_the_margin() -> None:
    pacer = Pacer(4, min_margin=0.0)
    slots = [pacer.reserve(now=10.0) for _ in range(4)]
    assert slots == [10.0, 10.25, 10.5, 10.75]


def test_a_late_send_does_not_push_the_ones_after_it() -> None:
    pacer = Pacer(10, min_margin=0.0)
    first = pacer.reserve(now=0.0)
    pacer.started(first, now=0.08)  # the event loop was busy: it left 80 ms late
    assert pacer.reserve(now=0.08) == 0.1  # the schedule holds
    assert pacer.reserve(now=0.08) == 0.2


def test_catching_up_never_puts_more_than_rate_in_a_window_plus_the_margin() -> None:
    pacer = Pacer(5, min_margin=0.01)
    # The lane stalls for 900 ms, then asks for slots as fast as it can.
    starts = [pacer.started(pacer.reserve(now=0.0), now=0.0)]
    starts += [pacer.started(pacer.reserve(now=0.9), now=0.9) for _ in range(20)]
    assert all(b - a >= 1.01 - 1e-9 for a, b in zip(starts, starts[5:], strict=False))


def test_a_steady_stream_holds_the_rate_less_the_margin() -> None:
    pacer = Pacer(80, min_margin=0.01)
    now, starts = 0.0, []
    for _ in range(80 * 10):
        slot = pacer.reserve(now=now)
        now = max(now, slot)
        starts.append(pacer.started(slot, now=now))
        pacer.answered(starts[-1], now=now + 0.003)  # loopback: every answer in 3 ms
    rate = (len(starts) - 1) / (starts[-1] - starts[0])
    assert 80 * 0.98 <= rate < 80
    assert _window_counts(starts, 1.0) <= 80


def test_uneven_answers_widen_the_margin_up_to_its_cap() -> None:
    pacer = Pacer(10, min_margin=0.005, max_margin=0.1)
    pacer.answered(0.0, now=0.01)
    pacer.answered(1.0, now=1.06)  # answers now vary by 50 ms: arrivals may too
    assert abs(pacer.margin - 0.05) < 1e-9
    pacer.answered(2.0, now=2.5)
    assert pacer.margin == 0.1


def test_a_refusal_widens_the_margin_at_once() -> None:
    pacer = Pacer(10, min_margin=0.005)
    pacer.refused()
    assert pacer.margin == 0.01


def test_an_idle_lane_starts_a_new_run_instead_of_bursting() -> None:
    pacer = Pacer(2, min_margin=0.0)
    pacer.reserve(now=0.0)
    pacer.reserve(now=0.0)
    # Five seconds idle: the next send goes now, the one after half a second later.
    assert pacer.reserve(now=5.0) == 5.0
    assert pacer.reserve(now=5.0) == 5.5


def _two_sends(pacer: Pacer, first_answer: float, *, heard: bool = True) -> None:
    """A 2/s lane's first second: send 0 starts at 0.0, send 1 at 0.5 and is answered
    60 ms later; send 0's answer comes at `first_answer`."""
    first = pacer.started(pacer.reserve(now=0.0), now=0.0)
    pacer.answered(first, now=first_answer, heard=heard)
    second = pacer.started(pacer.reserve(now=0.0), now=0.5)
    pacer.answered(second, now=0.56)


def test_a_send_waits_a_second_after_the_answer_of_the_send_rate_places_back() -> None:
    # Meta counted send 0 at 4 ms at the latest (its answer came then): send 2 goes a
    # second after that, sooner than the margin (the answers' 56 ms spread) would allow.
    pacer = Pacer(2, min_margin=0.0)
    _two_sends(pacer, first_answer=0.004)
    assert pacer.margin == pytest.approx(0.056)
    assert pacer.reserve(now=0.9) == pytest.approx(1.004)


def test_without_an_answer_a_send_waits_the_margin_after_the_start_rate_places_back() -> None:
    # The connection failed: nothing says when (or whether) Meta counted send 0.
    pacer = Pacer(2, min_margin=0.0)
    _two_sends(pacer, first_answer=0.004, heard=False)
    assert pacer.reserve(now=0.9) == pytest.approx(1.056)


def test_a_slow_answer_costs_no_more_than_the_margin() -> None:
    pacer = Pacer(2, min_margin=0.0, max_margin=0.05)
    _two_sends(pacer, first_answer=0.3)
    assert pacer.reserve(now=0.9) == pytest.approx(1.05)


def test_answers_quicker_than_the_margin_hold_the_rate_on_the_servers_clock() -> None:
    """A server that counts each request somewhere between its start and its answer
    (here: anywhere in a 0.1 to 30 ms round trip, with starts up to 2 ms late) never
    sees more than `rate` in a second, and the lane keeps 98 % of the rate: the answers'
    30 ms spread taken as a margin would keep 97 %."""
    rng = random.Random(7)
    rate = 50
    pacer = Pacer(rate, min_margin=0.005, max_margin=0.5)
    now, arrivals, starts = 0.0, [], []
    pending: list[tuple[float, float, float]] = []  # (answer time, start, arrival)
    for _ in range(rate * 20):
        slot = pacer.reserve(now=now)
        now = max(now, slot)
        for answer in sorted(p for p in pending if p[0] <= now):
            pacer.answered(answer[1], now=answer[0])
            pending.remove(answer)
        start = pacer.started(slot, now=now + rng.uniform(0.0, 0.002))
        round_trip = rng.uniform(0.0001, 0.03)
        arrival = start + rng.uniform(0.0, round_trip)
        pending.append((start + round_trip, start, arrival))
        starts.append(start)
        arrivals.append(arrival)
    arrivals.sort()
    assert _window_counts(arrivals, 1.0) <= rate
    assert (len(starts) - 1) / (starts[-1] - starts[0]) >= rate * 0.98
