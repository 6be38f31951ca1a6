"""Life signs: a fake clock and a fake stream drive the ticker; no sleeps."""

from __future__ import annotations

import io
import subprocess
import sys

from dindkit import progress, runner


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ticker(tty: bool) -> tuple[progress.Ticker, Clock, io.StringIO]:
    clock, stream = Clock(), io.StringIO()
    return progress.Ticker("Install Docker", stream, clock=clock, tty=tty), clock, stream


def test_a_log_gets_one_line_per_20_seconds_of_silence() -> None:
    tick, clock, stream = ticker(tty=False)
    for second in range(1, 61):
        clock.now = 100.0 + second
        tick.tick()
    assert stream.getvalue().splitlines() == [
        "    ... still running: Install Docker (20s)",
        "    ... still running: Install Docker (40s)",
        "    ... still running: Install Docker (1m00s)",
    ]


def test_output_resets_the_silence_in_a_log() -> None:
    tick, clock, stream = ticker(tty=False)
    clock.now = 115.0
    tick.line("[lab-a] Success")
    clock.now = 130.0
    tick.tick()  # 15 s quiet: nothing
    clock.now = 135.0
    tick.tick()  # 20 s quiet
    assert stream.getvalue().splitlines() == [
        "[lab-a] Success",
        "    ... still running: Install Docker (35s)",
    ]


def test_a_new_step_restarts_the_age() -> None:
    tick, clock, stream = ticker(tty=False)
    clock.now = 150.0
    tick.begin("Smoke-test dind")
    clock.now = 175.0
    tick.tick()
    assert stream.getvalue() == "    ... still running: Smoke-test dind (25s)\n"


def test_a_terminal_gets_a_spinner_line_that_output_clears() -> None:
    tick, clock, stream = ticker(tty=True)
    clock.now = 102.0
    tick.tick()  # quiet for 2 s: nothing yet
    assert stream.getvalue() == ""
    clock.now = 103.0
    tick.tick()
    clock.now = 104.0
    tick.tick()
    tick.line("--> Starting operation: Restart Docker")
    tick.clear()  # nothing left to clear
    assert stream.getvalue() == (
        "\r\x1b[K| Install Docker (3s)"
        "\r\x1b[K/ Install Docker (4s)"
        "\r\x1b[K--> Starting operation: Restart Docker\n"
    )


def test_the_spinner_line_fits_the_terminal_keeping_the_label_s_end() -> None:
    clock, stream = Clock(), io.StringIO()
    label = "Bootstrap a host | Install Docker Engine | Install docker.io"
    tick = progress.Ticker(label, stream, clock=clock, tty=True, columns=lambda: 40)
    clock.now = 105.0
    tick.tick()
    line = stream.getvalue().removeprefix("\r\x1b[K")
    assert line == "| ...er Engine | Install docker.io (5s)" and len(line) == 39


def test_format_age() -> None:
    assert [progress.format_age(s) for s in (0, 59.9, 60, 185)] == ["0s", "59s", "1m00s", "3m05s"]


def test_tick_until_ticks_between_waits_until_stopped() -> None:
    answers = iter([False, False, True])
    waits: list[float] = []
    ticks: list[int] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return next(answers)

    progress.tick_until(wait, lambda: ticks.append(1), 1.0)
    assert waits == [1.0, 1.0, 1.0] and len(ticks) == 2


def test_nested_running_relabels_the_active_ticker_and_restores_it() -> None:
    stream = io.StringIO()
    with progress.running("Lab up", stream) as outer:
        with progress.running("Waiting for SSH") as inner:
            assert inner is outer and outer.label == "Waiting for SSH"
            progress.say("Booting lab x")
        assert outer.label == "Lab up"
    assert "Booting lab x\n" in stream.getvalue()
    assert not progress._active


def test_say_prints_without_a_ticker(capsys) -> None:
    progress.say("hello")
    assert capsys.readouterr().out == "hello\n"


def test_running_step_reads_pyinfra_lines() -> None:
    assert runner.running_step("--> Starting operation: Install Docker \n") == "Install Docker"
    colored = "\x1b[34m--> Starting operation:\x1b[0m \x1b[1mSmoke-test DinD\x1b[0m \n"
    assert runner.running_step(colored) == "Smoke-test DinD"
    assert runner.running_step("    Starting nested operation: Restart Docker") == "Restart Docker"
    assert runner.running_step("--> Connecting to hosts...") == "Connecting to hosts"
    assert runner.running_step("--> Results:") == "Results"
    assert runner.running_step("    [lab-a] Success") is None
    assert runner.running_step("--> pyinfra error: x") is None


def test_streaming_keeps_the_output_in_order_and_the_exit_code(capsys) -> None:
    script = (
        "import sys\n"
        "print('--> Starting operation: One')\n"
        "print('on stderr', file=sys.stderr)\n"
        "print('[h] Success')\n"
        "sys.exit(3)\n"
    )
    result = runner.stream_with_life_signs([sys.executable, "-c", script], "test")
    assert isinstance(result, subprocess.CompletedProcess) and result.returncode == 3
    assert capsys.readouterr().out.splitlines() == [
        "--> Starting operation: One",
        "on stderr",
        "[h] Success",
    ]
