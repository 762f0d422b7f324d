"""Pacing a replay by event time, on a fake clock."""

from __future__ import annotations

import math

import pytest

from producers.pacing import Pacer

T0 = 1_767_623_400.0


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps or works."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "never sleep backwards"
        self.sleeps.append(seconds)
        self.now += seconds

    def work(self, seconds: float) -> None:
        self.now += seconds


def pacer(speed: float | None, clock: FakeClock, **kwargs: float) -> Pacer:
    return Pacer(speed, clock=clock, sleep=clock.sleep, **kwargs)


def replay(p: Pacer, clock: FakeClock, offsets: list[float]) -> list[float]:
    """Wall time, from the first event, at which each event was released."""
    released = []
    for offset in offsets:
        p.wait_until_due(T0 + offset)
        released.append(clock.now)
    return [moment - released[0] for moment in released]


def test_real_time_waits_out_the_event_time_gaps() -> None:
    clock = FakeClock()
    assert replay(pacer(1.0, clock), clock, [0, 1, 1.5, 4]) == [0, 1, 1.5, 4]
    assert clock.sleeps == [1, 0.5, 2.5]


def test_speed_ten_is_ten_times_faster() -> None:
    clock = FakeClock()
    released = replay(pacer(10, clock), clock, [0, 1, 2, 3, 13])
    assert released == pytest.approx([0, 0.1, 0.2, 0.3, 1.3])


def test_no_speed_never_waits_nor_reads_the_clock() -> None:
    def no_clock() -> float:
        raise AssertionError("read the clock")

    def no_sleep(seconds: float) -> None:
        raise AssertionError("slept")

    p = Pacer(None, clock=no_clock, sleep=no_sleep)
    assert [p.wait_until_due(T0 + k * 3600) for k in range(5)] == [0.0] * 5


def test_time_spent_working_is_not_slept_again() -> None:
    clock = FakeClock()
    p = pacer(1.0, clock)
    p.wait_until_due(T0)
    clock.work(0.3)
    assert p.wait_until_due(T0 + 1) == pytest.approx(0.7)
    clock.work(2.0)  # late: the next event is overdue
    assert p.wait_until_due(T0 + 2) == 0.0
    assert p.wait_until_due(T0 + 3.5) == pytest.approx(0.5)  # schedule stays absolute


def test_long_event_time_gaps_are_capped() -> None:
    clock = FakeClock()
    released = replay(pacer(1.0, clock), clock, [0, 1, 3601, 3602, 3602.5])
    assert released == pytest.approx([0, 1, 6, 7, 7.5])


def test_the_gap_cap_is_wall_time_at_any_speed() -> None:
    clock = FakeClock()
    p = pacer(10, clock, max_gap_seconds=2.0)
    # 15 s and 20 s of event time are 1.5 s and 2.0 s of wall time: not capped
    assert replay(p, clock, [0, 15, 35, 36]) == pytest.approx([0, 1.5, 3.5, 3.6])
    # 64 s and 400 s of event time would be 6.4 s and 40 s of wall time: capped at 2 s
    p.wait_until_due(T0 + 100)
    p.wait_until_due(T0 + 500)
    p.wait_until_due(T0 + 501)
    assert clock.sleeps[-3:] == pytest.approx([2.0, 2.0, 0.1])


def test_out_of_order_events_are_due_at_once_and_do_not_rewind() -> None:
    clock = FakeClock()
    p = pacer(1.0, clock)
    released = replay(p, clock, [0, 2, 1, 1.5, 3])
    assert released == pytest.approx([0, 2, 2, 2, 3])
    assert all(seconds > 0 for seconds in clock.sleeps)


def test_falling_far_behind_restarts_the_schedule_instead_of_bursting() -> None:
    clock = FakeClock()
    p = pacer(1.0, clock)
    p.wait_until_due(T0)
    clock.work(60)  # a stalled broker
    assert p.wait_until_due(T0 + 1) == 0.0
    assert p.wait_until_due(T0 + 2) == pytest.approx(1.0)  # paced again from here
    assert p.wait_until_due(T0 + 3) == pytest.approx(1.0)


def test_tiny_waits_are_skipped_but_the_average_rate_holds() -> None:
    clock = FakeClock()
    p = pacer(1.0, clock)
    for k in range(2_001):
        p.wait_until_due(T0 + k * 0.0004)  # 2500 events/s
    assert clock.now - 100.0 == pytest.approx(0.8, abs=p.min_sleep_seconds)
    assert all(seconds >= p.min_sleep_seconds for seconds in clock.sleeps)
    assert len(clock.sleeps) < 1_000
    assert p.slept == pytest.approx(sum(clock.sleeps))


@pytest.mark.parametrize("speed", [0, -1, math.nan, math.inf])
def test_speed_must_be_positive(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        Pacer(speed)


def test_max_gap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_gap_seconds"):
        Pacer(1.0, max_gap_seconds=0)
