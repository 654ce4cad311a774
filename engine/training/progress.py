"""Progress events emitted while training, and a plain-text renderer for the command line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

__all__ = ["Progress", "ProgressEvent", "TextProgress", "silent"]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of training: ``stage`` is cv, final, export, parity or done."""

    stage: str
    message: str
    fold: int = 0
    folds: int = 0
    iteration: int = 0
    max_iterations: int = 0
    metric: float | None = None


Progress = Callable[[ProgressEvent], None]


def silent(event: ProgressEvent) -> None:
    """A progress sink that shows nothing."""


class TextProgress:
    """Renders events as lines; on a terminal, iteration ticks redraw one status line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._open_line = False

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage == "tick":
            if not self.tty:
                return
            width = 30
            done = int(width * event.iteration / max(event.max_iterations, 1))
            bar = "#" * done + "." * (width - done)
            metric = f" auc {event.metric:.4f}" if event.metric is not None else ""
            self.stream.write(f"\r  fold {event.fold}/{event.folds} [{bar}] {event.iteration:4d}{metric}")
            self._open_line = True
        else:
            if self._open_line:
                self.stream.write("\r" + " " * 70 + "\r")
                self._open_line = False
            self.stream.write(event.message + "\n")
        self.stream.flush()
