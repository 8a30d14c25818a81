"""``--cluster`` values: ``local``, ``local:N`` or the address of a running scheduler."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from rsgeo.errors import OptionError, opt

#: ``host:port``, ``tcp://host:port``, ``tls://...``, ``ws://...``, ``inproc://...``.
_ADDRESS = re.compile(r"^(?:(tcp|tls|ws|wss|inproc|ucx)://)?[\w.\-\[\]:]+:\d+$")


@dataclass(frozen=True)
class ClusterSpec:
    """Where tasks run: a local cluster of ``workers`` processes, or ``address``."""

    workers: int | None = None
    address: str | None = None

    @property
    def is_local(self) -> bool:
        return self.address is None

    def __str__(self) -> str:
        return f"local:{self.workers}" if self.address is None else self.address


def default_local_workers() -> int:
    """Worker processes of ``--cluster local``: one per two cores, at least one.

    Two CPU threads per process keep torch's kernels efficient while leaving
    a process for each pair of cores; on a GPU box use ``local:N``, N GPUs.
    """
    return max(1, (os.cpu_count() or 1) // 2)


def parse_cluster(text: str) -> ClusterSpec:
    """Parse ``local``, ``local:N`` or a scheduler address (``tcp://host:8786``)."""
    value = text.strip()
    if value == "local":
        return ClusterSpec(workers=default_local_workers())
    if value.startswith("local:"):
        n = value[len("local:") :]
        if not n.isdigit() or int(n) < 1:
            raise OptionError(f"{opt('cluster')} {text!r}: local:N takes a number of worker processes >= 1, e.g. local:4")
        return ClusterSpec(workers=int(n))
    if _ADDRESS.match(value):
        return ClusterSpec(address=value if "://" in value else f"tcp://{value}")
    raise OptionError(
        f"{opt('cluster')} {text!r} is neither local, local:N nor a scheduler address; "
        f"use e.g. {opt('cluster', 'local:4')} or {opt('cluster', 'tcp://head-node:8786')}"
    )
