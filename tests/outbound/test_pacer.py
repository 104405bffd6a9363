"""The lane's pacer: never more than `rate` requests reach Meta in any second, on an
absolute schedule that a late send does not push back."""

from __future__ import annotations

from puente.outbound.lanes import Pacer


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
