"""Life signs for long, quiet steps: what is running, and for how long.

A :class:`Ticker` sits between a step's output and the console. On a terminal, once the step
has been quiet for ``QUIET`` seconds, one line that updates in place shows a spinner, the step
and its age; in a log (stdout is not a terminal, as in CI) it writes one line per ``EVERY``
seconds of silence instead, so a log never floods. Output that goes through the ticker
(:meth:`Ticker.line`, :func:`say`) clears the spinner line first.

``running(label)`` starts a ticker with a thread that ticks once a second; inside one, a
nested ``running`` only relabels the active ticker, so there is one life-sign line at a time.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

QUIET = 3.0  # seconds of silence before a terminal shows the spinner
EVERY = 20.0  # seconds of silence between two life-sign lines in a log
TICK = 1.0  # seconds between two ticks of running()'s thread
SPINNER = "|/-\\"
CLEAR_LINE = "\r\x1b[K"


def format_age(seconds: float) -> str:
    """``42s``, ``3m05s``."""
    whole = int(seconds)
    return f"{whole}s" if whole < 60 else f"{whole // 60}m{whole % 60:02d}s"


class Ticker:
    """The console of one long step; thread-safe (:meth:`tick` runs on another thread)."""

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
        every: float = EVERY,
        quiet: float = QUIET,
        columns: Callable[[], int] = lambda: shutil.get_terminal_size().columns,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self.every = every
        self.quiet = quiet
        self.columns = columns
        self._lock = threading.Lock()
        now = clock()
        self.label = label
        self.since = now
        self._last_output = now
        self._last_sign = now
        self._spinning = False
        self._frame = 0

    def begin(self, label: str, since: float | None = None) -> None:
        """A new step is running (``since`` when it started; default now)."""
        with self._lock:
            self.label = label
            self.since = self.clock() if since is None else since

    def line(self, text: str) -> None:
        """Write a line of the step's own output."""
        with self._lock:
            self._clear()
            self.stream.write(text.rstrip("\n") + "\n")
            self.stream.flush()
            self._last_output = self.clock()

    def tick(self) -> None:
        """Show a life sign if the step has been quiet long enough."""
        with self._lock:
            now = self.clock()
            age = format_age(now - self.since)
            quiet_for = now - self._last_output
            if self.tty:
                if quiet_for >= self.quiet:
                    spinner = SPINNER[self._frame % len(SPINNER)]
                    self._frame += 1
                    self.stream.write(CLEAR_LINE + self._fit(f"{spinner} ", f" ({age})"))
                    self._spinning = True
                    self.stream.flush()
            elif quiet_for >= self.every and now - self._last_sign >= self.every:
                self.stream.write(f"    ... still running: {self.label} ({age})\n")
                self.stream.flush()
                self._last_sign = now

    def _fit(self, before: str, after: str) -> str:
        """One terminal line (a wrapped one could not be redrawn): the label's end if need be."""
        room = self.columns() - 1 - len(before) - len(after)
        label = self.label if len(self.label) <= room else "..." + self.label[-max(room - 3, 1) :]
        return before + label + after

    def clear(self) -> None:
        """Remove the spinner line (on a terminal), e.g. before the ticker stops."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        if self._spinning:
            self.stream.write(CLEAR_LINE)
            self._spinning = False


_active: list[Ticker] = []


def tick_until(wait: Callable[[float], bool], tick: Callable[[], None], every: float) -> None:
    """Call ``tick`` after each ``wait(every)`` that returns False (an Event's wait)."""
    while not wait(every):
        tick()


@contextmanager
def running(label: str, stream: TextIO | None = None) -> Iterator[Ticker]:
    """Life signs for the block; nested, it relabels the active ticker for the block."""
    if _active:
        ticker = _active[-1]
        outer = (ticker.label, ticker.since)
        ticker.begin(label)
        try:
            yield ticker
        finally:
            ticker.begin(*outer)
        return
    ticker = Ticker(label, stream)
    stop = threading.Event()
    thread = threading.Thread(
        target=tick_until, args=(stop.wait, ticker.tick, TICK), name="dindkit-ticker", daemon=True
    )
    _active.append(ticker)
    thread.start()
    try:
        yield ticker
    finally:
        stop.set()
        thread.join()
        ticker.clear()
        _active.remove(ticker)


def say(message: str) -> None:
    """Print a line; through the active ticker when there is one (clears its spinner)."""
    if _active:
        _active[-1].line(message)
    else:
        print(message, flush=True)
