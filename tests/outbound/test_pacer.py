"""The lane's pacer: never more than `rate` requests reach Meta in any second."""

from __future__ import annotations

from puente.outbound.lanes import Pacer


def test_sends_are_spread_evenly() -> None:
    pacer = Pacer(4, slack=0.0)
    slots = [pacer.reserve(now=10.0) for _ in range(4)]
    assert slots == [10.0, 10.25, 10.5, 10.75]


def test_the_next_window_waits_for_metas_answer_to_the_send_a_window_back() -> None:
    pacer = Pacer(2, slack=0.0, answer_cap=0.5)
    first = pacer.reserve(now=0.0)
    mark = pacer.started(first, now=0.0)
    pacer.answered(mark, now=0.2)  # Meta took 200 ms to answer: it counted it by then
    second = pacer.reserve(now=0.0)
    pacer.started(second, now=second)
    # The third send may only leave a full second after the first was answered.
    assert pacer.reserve(now=0.6) == 1.2


def test_a_slow_answer_costs_at_most_the_cap() -> None:
    pacer = Pacer(1, slack=0.0, answer_cap=0.1)
    mark = pacer.started(pacer.reserve(now=0.0), now=0.0)
    pacer.answered(mark, now=5.0)  # a very slow link
    assert pacer.reserve(now=0.0) == 1.1


def test_a_late_start_moves_the_window() -> None:
    pacer = Pacer(1, slack=0.0, answer_cap=0.0)
    slot = pacer.reserve(now=0.0)
    pacer.started(slot, now=0.3)  # the event loop was busy: it left 300 ms late
    assert pacer.reserve(now=0.3) == 1.3
