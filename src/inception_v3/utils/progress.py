"""Progress for long work: a tqdm bar on a terminal; in a log (a batch job, `make demo > log`) one plain line
at a steady interval instead, with the count, rate, ETA and what the bar shows after it (the loss), and no
carriage returns.

The interval is 10 s, or $INCEPTION_V3_PROGRESS_INTERVAL seconds.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from tqdm import tqdm

from ..errors import UserError

_WITH_TOTAL = "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%), {rate_fmt}, ETA {remaining}{postfix}"
_WITHOUT_TOTAL = "{desc}: {n_fmt}, {rate_fmt}, {elapsed} elapsed{postfix}"


def on_terminal(stream: Any = None) -> bool:
    """Whether `stream` (default: stderr, where progress goes) is a terminal, where a bar may redraw itself."""
    isatty = getattr(stream or sys.stderr, "isatty", None)
    return isatty is not None and bool(isatty())


def progress_bar(*args: Any, **kwargs: Any) -> tqdm:
    """`tqdm(*args, **kwargs)` on a terminal; `LogLines` when stderr (or `file`) is not one."""
    return tqdm(*args, **kwargs) if on_terminal(kwargs.get("file")) else LogLines(*args, **kwargs)


class LogLines(tqdm):
    """A tqdm that writes one plain line per interval (and a last one when it closes), for logs; with tqdm's
    `delay`, none for work that ends sooner."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        text = os.environ.get("INCEPTION_V3_PROGRESS_INTERVAL", "10")
        try:
            self.interval = float(text)
        except ValueError:
            raise UserError(f"invalid INCEPTION_V3_PROGRESS_INTERVAL {text!r}: expected seconds, e.g. 30") from None
        self._last_line = -float("inf")
        self._printed_n: float = -1
        kwargs["mininterval"] = min(self.interval, 1.0)
        kwargs.pop("dynamic_ncols", None)
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg != "" and time.monotonic() - self._last_line >= self.interval and self._delayed():
            self._line()
        return True

    def _delayed(self) -> bool:
        """Whether tqdm's `delay` (seconds before anything is shown) has passed."""
        delay = getattr(self, "delay", 0) or 0
        return not delay or time.time() - getattr(self, "start_t", time.time()) >= delay

    def clear(self, *args: Any, **kwargs: Any) -> None:
        pass  # nothing to erase in a log

    def close(self) -> None:
        shown = not getattr(self, "disable", True) and getattr(self, "sp", None) is not None
        if shown and self.n != self._printed_n and (self._printed_n >= 0 or self._delayed()):
            self._line()  # where it ended
        self.sp = None  # tqdm's close then only unregisters the bar: nothing to clear in a log
        super().close()

    def _line(self) -> None:
        self._last_line, self._printed_n = time.monotonic(), self.n
        d = self.format_dict
        d["bar_format"] = _WITH_TOTAL if d.get("total") else _WITHOUT_TOTAL
        self.fp.write(" ".join(self.format_meter(**d).split()) + "\n")  # tqdm pads its rate for a bar
        self.fp.flush()
