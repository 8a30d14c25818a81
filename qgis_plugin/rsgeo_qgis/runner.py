"""Run one rsgeo command (embed, classify, query) with progress and cancel.

The command is a value (:class:`RsgeoCommand`) rendered either as a command
line for an external Python (``rsgeo ... --progress json``, whose JSON-lines
progress on stderr is streamed into the feedback) or as a call of rsgeo's
Python API in QGIS's own Python (``rsgeo.classify(..., progress=, cancel=)``).
Cancelling really stops the work: the subprocess gets an interrupt (so rsgeo
removes its temporary file), then is killed if it lingers, and whatever the
run created is removed.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shlex
import shutil
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .backend import Backend, neutral_cwd, popen_platform_kwargs, subprocess_env
from .definitions.schema import SQLITE_SIDE_SUFFIXES, journal_path, temporary_files

#: Seconds a stopped rsgeo gets to clean up after the interrupt before it is killed.
STOP_GRACE_S = 5.0


class Feedback(Protocol):
    """The part of ``QgsProcessingFeedback`` the runner uses."""

    def isCanceled(self) -> bool: ...  # noqa: N802 - Qt naming
    def setProgress(self, progress: float) -> None: ...  # noqa: N802
    def setProgressText(self, text: str) -> None: ...  # noqa: N802
    def pushInfo(self, info: str) -> None: ...  # noqa: N802
    def pushCommandInfo(self, info: str) -> None: ...  # noqa: N802
    def pushConsoleInfo(self, info: str) -> None: ...  # noqa: N802
    def pushDebugInfo(self, info: str) -> None: ...  # noqa: N802
    def reportError(self, error: str, fatalError: bool = False) -> None: ...  # noqa: N802,N803


class RunError(RuntimeError):
    """rsgeo failed; the message is rsgeo's own one-line error."""


class RunCancelled(RuntimeError):
    """The user cancelled; the work was stopped and its partial output removed."""


@dataclass(frozen=True)
class RsgeoCommand:
    """One rsgeo invocation, independent of how it is run.

    ``options`` use the CLI's option names with underscores (``chip_size``,
    ``class_set``, ``example_tile`` ...); ``None`` and ``False`` mean "not given".
    """

    command: str
    source: str
    output: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> Path:
        """The GeoPackage this run writes (the output, or the source GeoPackage in place)."""
        return Path(self.output or self.source)

    def argv(self) -> list[str]:
        """The command line after ``rsgeo``."""
        # Values are attached with "=" so that one starting with "-" (a western longitude,
        # a negative threshold) is not taken for an option.
        args = [self.command, self.source] if self.source else [self.command]  # no source: a --stac-search run
        if self.output:
            args.append(f"--output={self.output}")
        for name, value in self.options.items():
            flag = "--" + name.replace("_", "-")
            if value is None or value is False:
                continue
            if value is True:
                args.append(flag)
            elif name in ("classes", "bands"):
                joined = ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
                args.append(f"{flag}={joined}")
            elif isinstance(value, (list, tuple)):
                args += [f"{flag}={item}" for item in value]
            else:
                args.append(f"{flag}={value}")
        return args + ["--progress=json"]


# ---------------------------------------------------------------------------------------------
# Clean-up of what a stopped or failed run leaves behind.


@dataclass
class _Artifacts:
    """Files a run may create beside its target, and which of them existed before it."""

    target: Path
    keep_partial: bool
    existed: dict[Path, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for p in self._tracked():
            self.existed[p] = p.exists()

    def _tracked(self) -> list[Path]:
        journal = journal_path(self.target)
        return [self.target, journal, *(Path(str(journal) + s) for s in SQLITE_SIDE_SUFFIXES)]

    def remove_new(self, pid: int | None) -> list[Path]:
        """Remove files this run created (journals only unless ``keep_partial``)."""
        removed = []
        for p, existed in self.existed.items():
            is_journal = p != self.target
            if existed or (is_journal and self.keep_partial):
                continue
            if p.is_dir():  # a report folder (rsgeo assess)
                shutil.rmtree(p)
                removed.append(p)
            elif p.exists():
                p.unlink()
                removed.append(p)
        if pid is not None:  # rsgeo builds outputs in a temporary file beside the target
            for p in temporary_files(self.target, pid):
                p.unlink()
                removed.append(p)
        return removed


# ---------------------------------------------------------------------------------------------
# External Python: a subprocess streaming JSON-lines progress.


def _reader(stream: Any, name: str, sink: "queue.Queue[tuple[str, str | None]]") -> None:
    try:
        for raw in iter(stream.readline, b""):
            sink.put((name, raw.decode("utf-8", "replace").rstrip("\r\n")))
    finally:
        sink.put((name, None))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Interrupt, then kill what is left of the process (and its group on POSIX)."""
    if proc.poll() is not None:
        return
    try:
        if os.name == "nt":
            proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
        else:
            os.killpg(proc.pid, signal.SIGINT)
    except OSError:
        pass
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    if os.name != "nt":
        try:  # children (data loader workers ...) too, even if the leader exited
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()


class _EventHandler:
    """Turns rsgeo's stderr/stdout lines into feedback calls."""

    def __init__(self, feedback: Feedback) -> None:
        self.feedback = feedback
        self.error: str | None = None
        self.tail: list[str] = []
        self.last_progress = -1.0
        self.first: tuple[float, float] | None = None  # (done, time) of the first progress seen

    def line(self, stream: str, text: str) -> None:
        if not text.strip():
            return
        if stream == "stderr" and text.lstrip().startswith("{"):
            try:
                event = json.loads(text)
            except ValueError:
                event = None
            if isinstance(event, dict):
                self.event(event)
                return
        if text.startswith(("rsgeo: error:", "rsgeo: internal error:")):
            # "rsgeo: error: MESSAGE" is rsgeo's one line for a user mistake; keep the MESSAGE. It is
            # reported once, by the exception the run ends with (Processing shows that one anyway).
            self.error = text.removeprefix("rsgeo: error:").removeprefix("rsgeo: ").strip()
            return
        self.tail = (self.tail + [text])[-20:]
        self.feedback.pushConsoleInfo(text)

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        message = event.get("message") or event.get("stage")
        if kind == "progress":
            done, total = event.get("done"), event.get("total")
            if isinstance(done, (int, float)) and isinstance(total, (int, float)) and total > 0:
                self.progress(float(done), float(total))
            elif isinstance(message, str):
                self.feedback.setProgressText(message)
        elif kind in ("warning", "error") and isinstance(message, str):
            self.feedback.reportError(message, False)
        elif isinstance(message, str):
            self.feedback.pushInfo(message)
        else:
            self.feedback.pushConsoleInfo(json.dumps(event))

    def progress(self, done: float, total: float) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = (done, now)
        pct = max(0.0, min(100.0, 100.0 * done / total))
        if pct != self.last_progress:
            self.last_progress = pct
            self.feedback.setProgress(pct)
            self.feedback.setProgressText(progress_text(done, total, self.first, now))


def progress_text(done: float, total: float, first: tuple[float, float], now: float) -> str:
    """``"1,234 / 5,000 chips, about 2 min left"``: the rate since the first progress seen (a resumed
    run starts past 0), so the chips the journal already held do not make the estimate optimistic."""
    text = f"{int(done):,} / {int(total):,} chips"
    start_done, start_time = first
    if done > start_done and now > start_time and done < total:
        left = (total - done) * (now - start_time) / (done - start_done)
        text += f", about {_duration(left)} left"
    return text


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    if seconds < 3600:
        minutes, secs = divmod(round(seconds), 60)
        return f"{minutes} min {secs:02d} s" if minutes < 10 else f"{round(seconds / 60)} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def run_external(cmd: RsgeoCommand, backend: Backend, feedback: Feedback, *, keep_partial: bool = False) -> None:
    """Run ``cmd`` in ``backend``'s Python; RunError / RunCancelled on failure / cancel."""
    argv = backend.cli_argv(cmd.argv())
    artifacts = _Artifacts(cmd.target, keep_partial)
    feedback.pushCommandInfo("rsgeo " + shlex.join(cmd.argv()))
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=subprocess_env(), cwd=neutral_cwd(), **popen_platform_kwargs(),  # type: ignore[arg-type]
        )
    except OSError as exc:
        raise RunError(f"could not start {backend.python}: {exc}") from None
    feedback.pushInfo(f"rsgeo started in {backend.python} (process {proc.pid})")
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    readers = [
        threading.Thread(target=_reader, args=(proc.stdout, "stdout", lines), daemon=True),
        threading.Thread(target=_reader, args=(proc.stderr, "stderr", lines), daemon=True),
    ]
    for t in readers:
        t.start()
    handler = _EventHandler(feedback)
    open_streams = 2
    cancelled = False
    try:
        while open_streams:
            if feedback.isCanceled():
                cancelled = True
                _stop(proc)
            try:
                stream, text = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if text is None:
                open_streams -= 1
            elif not cancelled:
                handler.line(stream, text)
        rc = proc.wait()
    except BaseException:
        _stop(proc)
        artifacts.remove_new(proc.pid)
        raise
    finally:
        for t in readers:
            t.join(timeout=1)
        for stream_ in (proc.stdout, proc.stderr):
            if stream_ is not None:
                stream_.close()
    if cancelled or feedback.isCanceled():
        removed = artifacts.remove_new(proc.pid)
        raise RunCancelled(_cancel_message(proc.pid, removed))
    if rc != 0:
        artifacts.remove_new(proc.pid)
        detail = handler.error or " / ".join(handler.tail[-3:]) or "no message"
        raise RunError(f"rsgeo failed (exit status {rc}): {detail}")
    feedback.setProgress(100)


def _cancel_message(pid: int | None, removed: Sequence[Path]) -> str:
    what = f"process {pid} stopped" if pid is not None else "work stopped"
    files = f"; removed {', '.join(p.name for p in removed)}" if removed else ""
    return f"Cancelled: rsgeo {what}{files}."


# ---------------------------------------------------------------------------------------------
# In QGIS's Python: rsgeo's API with progress and cancel callbacks.


class _FeedbackLogHandler(logging.Handler):
    def __init__(self, feedback: Feedback) -> None:
        super().__init__(logging.INFO)
        self.feedback = feedback

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            if record.levelno >= logging.WARNING:
                self.feedback.reportError(msg, False)
            else:
                self.feedback.pushInfo(msg)
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)


def run_inprocess(cmd: RsgeoCommand, feedback: Feedback, *, keep_partial: bool = False) -> None:
    """Run ``cmd`` in this process: the same command line, parsed and checked by rsgeo's own CLI code."""
    from rsgeo.cli import run_command  # noqa: PLC0415 - only when rsgeo runs in QGIS's Python
    from rsgeo.errors import Cancelled, RsgeoError, option_style  # noqa: PLC0415

    argv = cmd.argv()
    artifacts = _Artifacts(cmd.target, keep_partial)
    handler = _EventHandler(feedback)
    log_handler = _FeedbackLogHandler(feedback)
    log_handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("rsgeo")
    logger.addHandler(log_handler)
    old_level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    feedback.pushCommandInfo("rsgeo " + shlex.join(argv) + "  (in QGIS's Python)")
    started = time.monotonic()
    try:
        with option_style("qgis"):  # messages name the algorithms' fields, not the CLI's flags
            run_command(argv, progress=handler.progress, cancel=feedback.isCanceled)
    except Cancelled:
        removed = artifacts.remove_new(None)
        raise RunCancelled(_cancel_message(None, removed)) from None
    except RsgeoError as exc:
        artifacts.remove_new(None)
        with option_style("qgis"):
            raise RunError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a bug in rsgeo: one line for the user, details in the log
        artifacts.remove_new(None)
        feedback.pushDebugInfo(traceback.format_exc())
        raise RunError(f"rsgeo internal error: {type(exc).__name__}: {exc}") from None
    finally:
        logger.removeHandler(log_handler)
        logger.setLevel(old_level)
    if feedback.isCanceled():  # the work finished before it saw the cancel
        removed = artifacts.remove_new(None)
        raise RunCancelled(_cancel_message(None, removed))
    feedback.pushInfo(f"rsgeo finished in {time.monotonic() - started:.1f} s")
    feedback.setProgress(100)


def run(cmd: RsgeoCommand, backend: Backend, feedback: Feedback, *, keep_partial: bool = False) -> None:
    """Run ``cmd`` in ``backend`` (external subprocess or in-process)."""
    if backend.external:
        run_external(cmd, backend, feedback, keep_partial=keep_partial)
    else:
        run_inprocess(cmd, feedback, keep_partial=keep_partial)

