"""The progress reporter, on a fake clock and an in-memory stream."""

from __future__ import annotations

import io
import re

import pytest

from alerting.progress import Progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def run(progress: Progress, clock: FakeClock, updates: int, seconds_each: float) -> None:
    for _ in range(updates):
        clock.now += seconds_each
        progress.update()


def test_a_log_gets_a_plain_line_at_most_every_five_seconds_and_a_summary() -> None:
    clock, out = FakeClock(), io.StringIO()
    with Progress(1_000, "replay", stream=out, clock=clock) as progress:
        assert not progress.tty  # a StringIO is not a terminal
        run(progress, clock, 100, 0.125)  # 12.5 s at 8/s
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert lines == [
        "replay: 40/1,000 (4%), 8.0/s, ETA 2:00",
        "replay: 80/1,000 (8%), 8.0/s, ETA 1:55",
        "replay: done, 100/1,000 in 12.5 s (8.0/s)",
    ]


def test_a_short_job_on_a_log_prints_only_the_summary() -> None:
    clock, out = FakeClock(), io.StringIO()
    with Progress(None, "evaluate", stream=out, clock=clock) as progress:
        run(progress, clock, 32_768, 2**-14)
    assert out.getvalue() == "evaluate: done, 32,768 in 2.0 s (16k/s)\n"


def test_a_terminal_gets_a_redrawn_bar_throttled_to_min_interval() -> None:
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(200, "replay", stream=out, clock=clock, tty=True, min_interval=0.5)
    run(progress, clock, 100, 0.05)  # 5 s
    frames = out.getvalue().split("\r")[1:]
    assert 8 <= len(frames) <= 11  # about one per 0.5 s
    assert all(frame.endswith("\x1b[K") for frame in frames)
    assert "\n" not in out.getvalue()
    last = frames[-1]
    assert re.search(r"\[#{9,10}-{10,11}\]", last), last
    assert "/200" in last and "20/s" in last and "ETA 0:05" in last
    progress.close()
    assert out.getvalue().endswith("\rreplay: done, 100/200 in 5.0 s (20/s)\x1b[K\n")


def test_a_terminal_without_total_shows_count_rate_and_elapsed() -> None:
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(None, "tail", stream=out, clock=clock, tty=True, min_interval=0.25)
    run(progress, clock, 41, 0.125)  # the first frame comes at once, then every 0.25 s
    assert out.getvalue().split("\r")[-1] == "tail 41 8.0/s 0:05\x1b[K"


def test_update_reads_the_clock_only_now_and_then() -> None:
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(None, "fast", stream=out, clock=clock, tty=True)
    run(progress, clock, 200_000, 1e-6)  # 1M updates/s
    assert progress.count == 200_000
    assert clock.reads < 200_000 / 200


def test_a_slow_stretch_after_a_fast_one_still_redraws() -> None:
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(None, "mixed", stream=out, clock=clock, tty=True)
    run(progress, clock, 100_000, 1e-6)
    frames = out.getvalue().count("\r")
    run(progress, clock, 400, 1.0)  # 1 update/s: seen after at most 256 updates
    assert out.getvalue().count("\r") - frames >= 400 - 256


def test_update_counts_batches() -> None:
    clock, out = FakeClock(), io.StringIO()
    with Progress(10, "batch", stream=out, clock=clock) as progress:
        progress.update(4)
        progress.update(6)
        clock.now = 2.0
    assert progress.count == 10
    assert out.getvalue() == "batch: done, 10/10 in 2.0 s (5.0/s)\n"


def test_disabled_progress_writes_nothing_but_still_counts() -> None:
    clock, out = FakeClock(), io.StringIO()
    with Progress(10, "quiet", stream=out, clock=clock, tty=True, enabled=False) as progress:
        run(progress, clock, 1_000, 1.0)
    assert out.getvalue() == ""
    assert progress.count == 1_000


def test_close_is_idempotent_and_runs_on_errors() -> None:
    clock, out = FakeClock(), io.StringIO()
    with pytest.raises(RuntimeError), Progress(5, "job", stream=out, clock=clock) as progress:
        progress.update()
        raise RuntimeError("boom")
    progress.close()
    assert out.getvalue().count("done") == 1


def test_a_broken_stream_does_not_break_the_work() -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    clock = FakeClock()
    with Progress(None, "job", stream=Broken(), clock=clock, tty=True) as progress:
        run(progress, clock, 100, 0.1)
    assert progress.count == 100 and not progress.enabled


def test_default_stream_is_stderr_at_construction(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress(1, "job", clock=FakeClock()) as progress:
        progress.update()
    assert capsys.readouterr().err == "job: done, 1/1 in 0.0 s (0.0/s)\n"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"total": -1}, "total"), ({"min_interval": -1}, "min_interval"),
     ({"plain_interval": 0}, "plain_interval")],
)  # fmt: skip
def test_invalid_parameters_are_named(kwargs: dict[str, float], name: str) -> None:
    params: dict[str, object] = {"total": 1, "label": "x", **kwargs}
    with pytest.raises(ValueError, match=name):
        Progress(**params)  # type: ignore[arg-type]
