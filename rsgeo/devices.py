"""The ``device`` option: spelt as torch spells devices, and present on this machine.

Checked when the model is loaded, before any chip is read: a misspelt or
unavailable device is one :class:`~rsgeo.errors.OptionError` line, not
torch's ``RuntimeError`` after the scene was opened.
"""

from __future__ import annotations

import re

from rsgeo.errors import OptionError, opt

#: Device kinds rsgeo runs models on; ``cuda`` and ``xpu`` take an optional ``:N`` index.
DEVICE_KINDS = ("cpu", "cuda", "mps", "xpu")
_DEVICE = re.compile(r"(cpu|mps|(cuda|xpu)(:(\d+))?)")


def check_device_name(device: str | None) -> None:
    """Refuse a device name torch would not read (``cdua``, ``gpu``, ``cuda:x``)."""
    if device is None:
        return
    if not _DEVICE.fullmatch(device.strip()):
        raise OptionError(
            f"unknown {opt('device')} {device!r}; use cpu, cuda, cuda:N (the N-th GPU), mps (Apple) or xpu"
        )


def check_device_available(device: str | None) -> None:
    """Refuse a device this machine does not have (needs torch; without it there is nothing to run on a GPU)."""
    if device is None or device.strip() == "cpu":
        return
    m = _DEVICE.fullmatch(device.strip())
    if m is None:
        check_device_name(device)
        return
    try:
        import torch
    except ImportError:
        raise OptionError(
            f"{opt('device')} {device} needs PyTorch, which is not installed here; leave {opt('device')} out (or use cpu)"
        ) from None
    kind, index = (m.group(2) or m.group(1)), m.group(4)
    backend = {"cuda": torch.cuda, "xpu": getattr(torch, "xpu", None), "mps": getattr(torch.backends, "mps", None)}[kind]
    available = bool(backend is not None and backend.is_available())
    if not available:
        raise OptionError(
            f"{opt('device')} {device}: this machine has no {kind.upper() if kind != 'mps' else 'Apple MPS'} device "
            f"PyTorch can use; leave {opt('device')} out (GPU when there is one) or use {opt('device', 'cpu')}"
        )
    if index is not None and kind in ("cuda", "xpu"):
        count = int(backend.device_count()) if backend is not None else 0
        if int(index) >= count:
            raise OptionError(
                f"{opt('device')} {device} does not exist: this machine has {count} {kind} device(s), "
                f"numbered 0 to {count - 1}"
            )
