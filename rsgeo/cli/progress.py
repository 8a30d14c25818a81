"""Progress on stderr: a bar on a terminal, plain lines in logs, or JSON lines."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """Callable ``(done, total)`` that renders progress in one of three styles.

    ``bar`` redraws one line (terminals), ``lines`` prints every 10 %
    (logs), ``json`` prints ``{"event": "progress", ...}`` lines for programs
    such as the QGIS plugin, ``none`` prints nothing.
    """

    def __init__(self, mode: str = "auto", *, label: str = "chips", stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "lines"
        self.mode = mode
        self.label = label
        self.start = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        elapsed = now - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.mode == "json":
            if now - self._last_draw >= 0.2 or done >= total:
                self._last_draw = now
                self.write_line(json.dumps({"event": "progress", "done": done, "total": total, "rate": round(rate, 2)}))
        elif self.mode == "bar":
            if now - self._last_draw >= 0.1 or done >= total:
                self._last_draw = now
                frac = done / total if total else 1.0
                width = 30
                fill = int(frac * width)
                eta = (total - done) / rate if rate > 0 else float("nan")
                eta_text = f"{eta:5.0f}s" if eta == eta else "    ?"
                self.stream.write(
                    f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{total} {self.label} "
                    f"{rate:6.1f}/s ETA {eta_text}"
                )
                if done >= total:
                    self.stream.write("\n")
                self.stream.flush()
        elif self.mode == "lines":
            decile = int(10 * done / total) if total else 10
            if decile != self._last_decile:
                self._last_decile = decile
                self.write_line(f"rsgeo: {done}/{total} {self.label} ({rate:.1f}/s)")

    def done(self, output: str) -> None:
        if self.mode == "json":
            self.write_line(json.dumps({"event": "done", "output": output}))

    def write_line(self, text: str) -> None:
        # One write per line: print() writes the text and the newline separately, and a
        # Ctrl-C between the two would glue the "interrupted" message to a JSON line.
        self.stream.write(text + "\n")
        self.stream.flush()


class CallbackProgress:
    """Progress handed to a caller's ``progress(done, total)`` callback (a front end embedding the CLI)."""

    def __init__(self, callback: Callable[[int, int], None]) -> None:
        self.callback = callback
        self.mode = "none"
        self.label = "chips"

    def __call__(self, done: int, total: int) -> None:
        self.callback(done, total)

    def done(self, output: str) -> None:
        pass

    def write_line(self, text: str) -> None:
        pass
