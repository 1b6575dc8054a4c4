"""SIGINT/SIGTERM during training: remember the request; the loop finishes its step, checkpoints, stops."""

from __future__ import annotations

import signal
from typing import Any


class StopRequest:
    """Context manager that turns SIGINT and SIGTERM into a flag (and restores the handlers after)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signal = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
