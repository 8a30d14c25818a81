"""The callbacks every long call of the library takes: progress and cancellation."""

from __future__ import annotations

from collections.abc import Callable

#: ``progress(done, total)``: called as chips (or scenes) are done.
ProgressCallback = Callable[[int, int], None]
#: ``cancel()``: polled between batches; ``True`` stops the work (``Cancelled``).
CancelCheck = Callable[[], bool]
