"""The output lock: one run at a time writes a given GeoPackage.

A run writing ``OUT.gpkg`` (encoding a scene into it, or adding layers to it
in place) first creates ``OUT.gpkg.rsgeo-lock`` beside it with ``O_EXCL``,
holding its pid, host, start time and command line as JSON, and removes it
when it is done. A second run finds the file and either stops at once with
one line naming the holder (:class:`~rsgeo.errors.OutputBusyError`; the
command line exits 75) or, for in-place additions (the QGIS dock and a script
adding layers to one result), waits its turn and then re-reads the result, so
no layer is lost.

The lock file appears whole (its record is written first, then hard-linked
into place). A lock left by a run that was killed is stale: on the same host its pid is
gone, or belongs to a process started later than the run (the pid was reused);
the next run removes it, under an ``flock`` of the folder so that two runs
breaking the same stale lock cannot remove each other's fresh one. A lock of
another host cannot be checked: the message says what to delete once that run
is known to be gone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

from rsgeo.definitions.schema import lock_path
from rsgeo.errors import OutputBusyError, OutputError

logger = logging.getLogger(__name__)

#: How long an in-place addition waits for the run ahead of it (seconds).
IN_PLACE_WAIT_S = 300.0
#: A lock file this old that still holds no readable record was left by a run killed while writing it
#: (or damaged); a younger one is waited on, whatever the wait asked for.
UNREADABLE_GRACE_S = 10.0
_POLL_S = 0.05


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock, as its file says."""

    pid: int
    host: str
    started: str
    #: The process's start time in clock ticks since boot (Linux ``/proc``), to tell a reused pid.
    process_start: int | None
    command: str

    @classmethod
    def this_process(cls, command: str) -> LockHolder:
        return cls(
            pid=os.getpid(), host=socket.gethostname(),
            started=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            process_start=process_start_ticks(os.getpid()), command=command,
        )

    def to_json(self) -> str:
        return json.dumps({"pid": self.pid, "host": self.host, "started": self.started,
                           "process_start": self.process_start, "command": self.command})

    @classmethod
    def from_json(cls, text: str) -> LockHolder | None:
        try:
            d = json.loads(text)
            start = d.get("process_start")
            return cls(pid=int(d["pid"]), host=str(d["host"]), started=str(d.get("started", "")),
                       process_start=int(start) if start is not None else None, command=str(d.get("command", "")))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def is_stale(self) -> bool:
        """Whether the run that took the lock is certainly gone (only decidable on its own host)."""
        if self.host != socket.gethostname():
            return False
        if not pid_alive(self.pid) or is_zombie(self.pid):
            return True
        now = process_start_ticks(self.pid)
        return self.process_start is not None and now is not None and now != self.process_start

    def describe(self) -> str:
        what = f"`{self.command}`, " if self.command else ""
        return f"{what}pid {self.pid} on {self.host}, since {self.started}"


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3 on of ``/proc/PID/stat`` (state first), where there is a ``/proc``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:  # the command name (field 2) may hold spaces and parentheses: split after its last ')'
        return text[text.rindex(")") + 2 :].split()
    except ValueError:
        return None


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), where ``/proc`` says; else ``None``."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (ValueError, IndexError):
        return None


def is_zombie(pid: int) -> bool:
    """A process that has ended but not been reaped by its parent (``kill -0`` still finds it)."""
    fields = _proc_stat(pid)
    return fields is not None and bool(fields) and fields[0] in ("Z", "X")


def read_holder(path: Path) -> LockHolder | None:
    try:
        return LockHolder.from_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


@contextlib.contextmanager
def _folder_guard(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` of ``folder`` while a stale lock is checked and removed (best effort)."""
    try:
        import fcntl
    except ImportError:  # Windows: no guard
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


class OutputLock:
    """The lock of one output; use as a context manager (``with OutputLock(out, ...):``).

    ``wait`` is how long to wait for another holder (0: refuse at once); ``command``
    (a line, or an argv joined here) is what a refused run is told holds it.
    """

    def __init__(self, output: Path, *, wait: float = 0.0, command: str | Sequence[str] = "") -> None:
        self.output = Path(output)
        self.path = lock_path(self.output)
        self.wait = wait
        text = command if isinstance(command, str) else shlex.join(str(c) for c in command)
        self.holder = LockHolder.this_process(text or " ".join(["rsgeo", *sys.argv[1:]])[:200])
        self._held = False

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        announced = False
        while True:
            if self._try_create():
                self._held = True
                return
            other = read_holder(self.path)
            if self._break_if_stale(other):
                continue
            if time.monotonic() >= deadline and other is not None:
                raise self._busy(other)
            if not announced:
                logger.warning("%s is being written by another run (%s); waiting for it to finish",
                               self.output.name, other.describe() if other else "starting")
                announced = True
            time.sleep(_POLL_S)

    def _try_create(self) -> bool:
        """Create the lock file whole: its record is written to a file of this process's own,
        then hard-linked to the lock path (atomic, and refused if it exists: ``O_EXCL``'s
        meaning, but no run ever sees a half-written record). Where the filesystem has no
        hard links, an ``O_EXCL`` create and write."""
        record = self.holder.to_json().encode("utf-8")
        own = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            fd = os.open(own, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
            try:
                os.write(fd, record)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(own, self.path)
                return True
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS):
                    raise
            return self._create_exclusive(record)
        except OSError as exc:
            raise OutputError(
                f"cannot create the lock file {self.path} ({exc.strerror or exc}); check the folder's permissions, "
                "or choose another -o path"
            ) from None
        finally:
            with contextlib.suppress(OSError):
                own.unlink()

    def _create_exclusive(self, record: bytes) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, record)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def _break_if_stale(self, seen: LockHolder | None) -> bool:
        """Remove the lock if its holder is gone; True if it was removed (then try again)."""
        if seen is None:  # being written this instant, or left empty by a run killed while writing it
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return True
            if age < UNREADABLE_GRACE_S:
                return False
        elif not seen.is_stale():
            return False
        with _folder_guard(self.path.parent):
            now = read_holder(self.path)
            if now != seen:  # another run broke it (and maybe took it) meanwhile
                return True
            logger.info("removing the lock %s, left by a run that is gone (%s)", self.path.name,
                        seen.describe() if seen else "unreadable")
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        return True

    def _busy(self, other: LockHolder | None) -> OutputBusyError:
        who = other.describe() if other else "a run that is starting"
        waited = f" (waited {self.wait:.0f} s)" if self.wait >= 1 else ""
        return OutputBusyError(
            f"{self.output} is being written by another run ({who}){waited}; wait for it to finish and run again, "
            f"or, if that run is gone, delete {self.path}"
        )

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        if read_holder(self.path) == self.holder:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def holder_of(output: Path) -> LockHolder | None:
    """Who holds ``output``'s lock now, if anyone (for displays such as the QGIS plugin)."""
    path = lock_path(output)
    return read_holder(path) if path.exists() else None
