"""The search panel's connection to a long-lived rsgeo worker (``rsgeo.worker``).

The worker keeps result files open and the text encoder loaded, so repeated
queries answer in well under a second. With an external Python it is a
``QProcess`` speaking JSON lines; when rsgeo runs inside QGIS it is a
``QThread`` calling the same request handler. Either way replies arrive as
Qt signals on the main thread, so the map never blocks and layers are only
touched from the main thread.
"""

from __future__ import annotations

import array
import base64
import json
import queue
import sys
from collections.abc import Callable
from typing import Any

from qgis.core import QgsMessageLog
from qgis.PyQt.QtCore import QObject, QProcess, QProcessEnvironment, QThread, QTimer, pyqtSignal

from .backend import Backend, neutral_cwd, subprocess_env
from .compat import MSG_INFO, MSG_WARNING

LOG_TAG = "rsgeo"

Callback = Callable[[bool, Any], None]


def decode_array(text: str, dtype: str) -> list[Any]:
    """A base64 little-endian array from the worker, as a Python list (no numpy needed)."""
    codes = {"int64": "q", "int32": "i", "float32": "f", "float64": "d"}
    arr = array.array(codes[dtype])
    arr.frombytes(base64.b64decode(text))
    if sys.byteorder != "little":
        arr.byteswap()
    return arr.tolist()


class _ThreadWorker(QThread):
    """Runs ``rsgeo.worker.Worker`` in QGIS's Python, off the main thread."""

    replied = pyqtSignal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.requests: "queue.Queue[dict[str, Any] | None]" = queue.Queue()

    def run(self) -> None:
        # An exception escaping QThread.run() aborts QGIS (PyQt's unhandled-exception hook calls
        # qFatal): every failure becomes an error reply instead, the way the external worker's
        # death becomes ``failed``.
        try:
            from rsgeo.worker import Worker  # noqa: PLC0415 - in-process backend only

            worker = Worker()
        except Exception as exc:  # noqa: BLE001 - reported to the dock, never raised in a thread
            worker, startup_error = None, f"rsgeo cannot start in QGIS's Python: {type(exc).__name__}: {exc}"
        while True:
            request = self.requests.get()
            if request is None or request.get("op") == "shutdown":
                return
            if worker is None:
                self.replied.emit({"id": request.get("id"), "ok": False, "error": startup_error})
                continue
            try:
                reply = worker.handle(request)
            except Exception as exc:  # noqa: BLE001 - Worker.handle answers errors itself; this is the last guard
                reply = {"id": request.get("id"), "ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}
            self.replied.emit(reply)


#: Worker processes asked to exit and not waited for (kept alive here until they have exited).
_exiting: set[QProcess] = set()


def _let_go(proc: QProcess, timeout_ms: int) -> None:
    """Keep ``proc`` until it exits (without its client); kill it if it outlives ``timeout_ms``."""
    for signal in (proc.readyReadStandardOutput, proc.readyReadStandardError, proc.errorOccurred, proc.finished):
        try:
            signal.disconnect()
        except TypeError:
            pass
    proc.setParent(None)
    _exiting.add(proc)

    def gone(*_args: object) -> None:
        _exiting.discard(proc)
        proc.deleteLater()

    proc.finished.connect(gone)
    QTimer.singleShot(timeout_ms, lambda: proc.kill() if proc in _exiting else None)


class WorkerClient(QObject):
    """Sends requests to the worker one at a time and calls back with the replies.

    ``started(version)`` once the worker is up; ``failed(message)`` if it
    cannot start or dies; ``busy(bool)`` while a request is being answered.
    """

    started = pyqtSignal(str)
    failed = pyqtSignal(str)
    busy = pyqtSignal(bool)

    def __init__(self, backend: Backend, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.version = ""
        self._process: QProcess | None = None
        self._thread: _ThreadWorker | None = None
        self._buffer = b""
        self._next_id = 1
        self._pending: list[tuple[dict[str, Any], Callback | None, str | None]] = []
        self._in_flight: tuple[int, Callback | None] | None = None
        self._ready = False
        self._stopping = False

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self.backend.external:
            proc = QProcess(self)
            env = QProcessEnvironment()
            for key, value in subprocess_env().items():
                env.insert(key, value)
            proc.setProcessEnvironment(env)
            proc.setWorkingDirectory(neutral_cwd())
            proc.readyReadStandardOutput.connect(self._read_stdout)
            proc.readyReadStandardError.connect(self._read_stderr)
            proc.errorOccurred.connect(self._process_error)
            proc.finished.connect(self._process_finished)
            argv = self.backend.worker_argv()
            self._process = proc
            proc.start(argv[0], argv[1:])
        else:
            import rsgeo  # noqa: PLC0415

            self._thread = _ThreadWorker(self)
            self._thread.replied.connect(self._on_reply)
            self._thread.start()
            self._on_ready(str(getattr(rsgeo, "__version__", "unknown")))

    @property
    def pid(self) -> int | None:
        if self._process is not None and self._process.state() != QProcess.ProcessState.NotRunning:
            return int(self._process.processId())
        return None

    @property
    def is_running(self) -> bool:
        return (self._process is not None and self._process.state() != QProcess.ProcessState.NotRunning) or (
            self._thread is not None and self._thread.isRunning()
        )

    def stop(self, timeout_ms: int = 3000, *, wait: bool = True) -> None:
        """Ask the worker to exit; kill it if it does not within ``timeout_ms``.

        ``wait=False`` returns at once (the panel closing a result: a worker holding
        10^6 embeddings took 1.2 s to exit, all of it on the main thread when waited
        for); the process is then let go and killed later if it has not exited.
        """
        self._stopping = True
        self._pending.clear()
        if self._process is not None:
            proc = self._process
            if proc.state() != QProcess.ProcessState.NotRunning:
                proc.write(b'{"op": "shutdown"}\n')
                proc.closeWriteChannel()
                if not wait:
                    _let_go(proc, timeout_ms)
                elif not proc.waitForFinished(timeout_ms):
                    proc.kill()
                    proc.waitForFinished(timeout_ms)
            self._process = None
        if self._thread is not None:
            self._thread.requests.put(None)
            self._thread.wait(timeout_ms)
            self._thread = None

    # -- requests ---------------------------------------------------------------------------
    def request(self, op: str, callback: Callback | None = None, *, replace: str | None = None, **params: Any) -> None:
        """Queue ``op``; ``replace`` drops a queued (not yet sent) request with the same tag.

        The panel tags queries so that typing fast never builds a backlog: only the
        latest unanswered query is kept.
        """
        if replace is not None:
            self._pending = [p for p in self._pending if p[2] != replace]
        self._pending.append(({"op": op, **params}, callback, replace))
        self._send_next()

    def _send_next(self) -> None:
        if not self._ready or self._in_flight is not None or not self._pending:
            return
        request, callback, _tag = self._pending.pop(0)
        rid = self._next_id
        self._next_id += 1
        request = {**request, "id": rid}
        self._in_flight = (rid, callback)
        self.busy.emit(True)
        if self._process is not None:
            self._process.write((json.dumps(request) + "\n").encode("utf-8"))
        elif self._thread is not None:
            self._thread.requests.put(request)

    def _on_reply(self, reply: dict[str, Any]) -> None:
        if self._in_flight is None or reply.get("id") != self._in_flight[0]:
            return
        _rid, callback = self._in_flight
        self._in_flight = None
        self.busy.emit(bool(self._pending))
        if callback is not None:
            ok = bool(reply.get("ok"))
            callback(ok, reply.get("result") if ok else str(reply.get("error", "unknown error")))
        self._send_next()

    def _on_ready(self, version: str) -> None:
        self._ready = True
        self.version = version
        self.started.emit(version)
        self._send_next()

    # -- process I/O ------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        if self._process is None:
            return
        self._buffer += bytes(self._process.readAllStandardOutput())
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                message = json.loads(line.decode("utf-8"))
            except ValueError:
                QgsMessageLog.logMessage(f"worker: {line.decode('utf-8', 'replace')}", LOG_TAG, MSG_INFO)
                continue
            if isinstance(message, dict) and message.get("event") == "ready":
                self._on_ready(str(message.get("version", "")))
            elif isinstance(message, dict):
                self._on_reply(message)

    def _read_stderr(self) -> None:
        if self._process is None:
            return
        text = bytes(self._process.readAllStandardError()).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.strip():
                QgsMessageLog.logMessage(line, LOG_TAG, MSG_INFO)

    def _process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._fail(f"could not start {' '.join(self.backend.worker_argv()[:3])}")

    def _process_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        if not self._stopping:
            self._fail(f"the rsgeo worker exited (status {code}); see the rsgeo log messages")

    def _fail(self, message: str) -> None:
        QgsMessageLog.logMessage(message, LOG_TAG, MSG_WARNING)
        self._ready = False
        callbacks = ([self._in_flight[1]] if self._in_flight else []) + [p[1] for p in self._pending]
        self._in_flight = None
        self._pending.clear()
        self.busy.emit(False)
        for cb in callbacks:
            if cb is not None:
                cb(False, message)
        self.failed.emit(message)
