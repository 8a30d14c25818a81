"""Lengths with explicit units: a chip size or stride in pixels or in metres.

One parser for every front end: ``224`` and ``"224"`` and ``"224px"`` are
pixels, ``"500m"`` and ``"0.5km"`` metres. Pixels must be whole; metres are
turned into pixels against a scene's pixel size by the library.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

Unit = Literal["px", "m"]

_LENGTH = re.compile(
    r"^\s*([+-]?(?:[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?|inf|infinity|nan))\s*(px|m|km)?\s*$", re.IGNORECASE
)


class LengthError(ValueError):
    """A length that cannot be one; ``reason`` is ``syntax`` (not a number with a unit),
    ``positive`` (zero, negative or not finite) or ``whole`` (a fraction of a pixel)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Length:
    """A positive length: ``value`` pixels (``unit="px"``, whole) or metres (``unit="m"``)."""

    value: float
    unit: Unit = "px"

    def __post_init__(self) -> None:
        if self.unit not in ("px", "m"):
            raise LengthError(f"unit {self.unit!r} is neither 'px' nor 'm'", "syntax")
        if not (math.isfinite(self.value) and self.value > 0):
            raise LengthError(f"a length must be positive, got {self.value:g} {self.unit}", "positive")
        if self.unit == "px" and self.value != int(self.value):
            raise LengthError(f"pixels are whole, got {self.value:g} px; give metres with an m (e.g. 500m)", "whole")

    @property
    def pixels(self) -> int | None:
        """Whole pixels, or ``None`` for a length in metres."""
        return int(self.value) if self.unit == "px" else None

    def __str__(self) -> str:
        return f"{int(self.value)}" if self.unit == "px" else f"{self.value:g}m"

    @classmethod
    def parse(cls, text: str | int | float | Length) -> Length:
        """``224`` / ``"224"`` / ``"224px"`` (pixels), ``"500m"`` / ``"0.5km"`` (metres).

        Raises :class:`LengthError` (a ``ValueError``) saying what the forms are.
        """
        if isinstance(text, Length):
            return text
        if isinstance(text, bool):
            raise LengthError(f"a length is whole pixels (224) or metres (500m), got {text!r}", "syntax")
        if isinstance(text, (int, float)):
            return cls(float(text), "px")
        match = _LENGTH.match(str(text))
        if match is None:
            raise LengthError(f"a length is whole pixels (224) or metres (500m), got {text!r}", "syntax")
        number, unit = float(match.group(1)), (match.group(2) or "px").lower()
        if unit == "km":
            return cls(number * 1000.0, "m")
        return cls(number, "m" if unit == "m" else "px")
