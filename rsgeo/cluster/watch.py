"""Workers joining and leaving a cluster while a run uses it, told to the user.

Dask reruns the blocks of a worker that dies (a nanny restarts a killed
worker process, an autoscaler adds and removes nodes), so the run goes on
and its output is the same; but a user watching a long run should know that
a worker was lost, at the default verbosity, not only with ``-vv``. The
scheduler publishes ``add-worker`` / ``remove-worker`` events on its ``all``
topic; :class:`WorkerWatch` subscribes to it and the driver, in its own
thread, logs what arrived: a warning per worker that left unexpectedly, an
info line per worker that joined.
"""

from __future__ import annotations

import logging
import queue
from typing import Any

logger = logging.getLogger(__name__)

#: The scheduler's topic that carries worker arrivals and departures.
TOPIC = "all"


class WorkerWatch:
    """Collects worker arrivals and departures of ``client``'s scheduler.

    Use as a context manager around the run; call :meth:`report` from the
    driver's loop. Events arrive on Dask's event-loop thread and are only
    queued there, so messages come out in the driver's thread, between
    progress lines.
    """

    def __init__(self, client: Any, *, key_prefix: str = "rsgeo-block-") -> None:
        self.client = client
        self.key_prefix = key_prefix
        self._events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.left: list[str] = []

    def __enter__(self) -> WorkerWatch:
        self.client.subscribe_topic(TOPIC, self._on_event)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.client.unsubscribe_topic(TOPIC)
        except (ValueError, OSError, RuntimeError):  # the client is already closing
            pass
        self.report()

    def _on_event(self, event: Any) -> None:
        _, message = event
        if isinstance(message, dict) and message.get("action") in ("add-worker", "remove-worker"):
            self._events.put(message)

    def report(self) -> None:
        """Log the events received since the last call."""
        while True:
            try:
                message = self._events.get_nowait()
            except queue.Empty:
                return
            worker = message.get("worker", "?")
            if message["action"] == "add-worker":
                logger.info("worker %s joined the cluster", worker)
                continue
            if message.get("expected"):  # retired on purpose (scaled down, cluster closing)
                logger.info("worker %s was retired from the cluster", worker)
                continue
            self.left.append(worker)
            held = [k for k in message.get("processing-tasks") or () if str(k).startswith(self.key_prefix)]
            if held:
                blocks = "the block it held is" if len(held) == 1 else f"the {len(held)} blocks it held are"
                logger.warning("worker %s left the cluster; %s run again (the output is unaffected)", worker, blocks)
            else:
                logger.warning("worker %s left the cluster (it held no block of this run)", worker)
