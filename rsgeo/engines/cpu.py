"""What the CPU can do that decides ``--precision auto``: bf16 in hardware.

AMX (``amx_bf16``, Sapphire Rapids and later) and AVX-512 BF16 (``avx512_bf16``,
Cooper Lake, Zen 4) run bf16 matrix products natively; without them bf16 is
emulated and slower than fp32, so ``auto`` never picks it there.
"""

from __future__ import annotations

import functools
from pathlib import Path

BF16_FLAGS = ("amx_bf16", "avx512_bf16")
#: Flags worth recording with a benchmark figure.
REPORTED_FLAGS = ("amx_bf16", "avx512_bf16", "avx512_vnni")


def flags_of(cpuinfo: str) -> frozenset[str]:
    """The CPU flags listed in a ``/proc/cpuinfo`` text."""
    found: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            found.update(value.split())
    return frozenset(found)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """This machine's CPU flags (empty where ``/proc/cpuinfo`` does not exist)."""
    try:
        return flags_of(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return frozenset()


def has_bf16_hardware(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU multiplies bf16 natively (AMX or AVX-512 BF16)."""
    return bool(set(BF16_FLAGS) & (cpu_flags() if flags is None else flags))
