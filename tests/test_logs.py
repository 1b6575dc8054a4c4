"""Output for batch jobs: off a terminal, progress is one plain line per interval (no carriage returns) and
third-party warnings that say nothing to a user are not printed."""

import io
import subprocess
import sys
import time

import pytest

from inception_v3.cli import QUIET_WARNINGS
from inception_v3.utils.progress import LogLines, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_plain_lines_at_an_interval_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCEPTION_V3_PROGRESS_INTERVAL", "0.05")
    log = io.StringIO()
    with progress_bar(total=40, desc="epoch 1", unit="step", leave=False, file=log) as bar:
        assert isinstance(bar, LogLines)
        for _ in range(40):
            time.sleep(0.005)
            bar.update(1)
            bar.set_postfix(loss="0.123")  # refreshes the bar each step; the log still gets a line per interval
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and 3 <= len(lines) <= 8, lines  # about 0.2 s at one line per 0.05 s, plus the ends
    assert lines[0].startswith("epoch 1: 0/40 (0%)") and lines[-1].startswith("epoch 1: 40/40 (100%)")
    assert "step/s, ETA" in lines[-1] and lines[-1].endswith("loss=0.123")
    terminal = Terminal()
    with progress_bar(total=3, desc="bar", file=terminal) as bar:  # a terminal keeps tqdm's bar
        assert not isinstance(bar, LogLines)
        bar.update(3)
    assert "\r" in terminal.getvalue()


def test_useless_third_party_warnings_are_not_printed() -> None:
    """A foreign pickle's protocol note, TorchScript's deprecation, more workers than CPUs: not shown once the
    command has started (a foreign file is one line of ours); any other warning still is."""
    script = (
        "import warnings\n"
        "from inception_v3.cli import main\n"
        "main(['recipes'])\n"
        "warnings.warn('Detected pickle protocol 4 in the checkpoint', UserWarning)\n"
        "warnings.warn('`torch.jit.save` is deprecated. Please switch to `torch.export`.', FutureWarning)\n"
        "warnings.warn('This DataLoader will create 4 worker processes in total.', UserWarning)\n"
        "warnings.warn('something real', UserWarning)\n"
    )
    done = subprocess.run([sys.executable, "-W", "default", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "something real" in done.stderr
    assert not any(w in done.stderr for w in ("pickle protocol", "is deprecated", "worker processes"))
    assert len(QUIET_WARNINGS) == 4


def test_a_bad_progress_interval_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from inception_v3.errors import UserError

    monkeypatch.setenv("INCEPTION_V3_PROGRESS_INTERVAL", "soon")
    with pytest.raises(UserError, match="INCEPTION_V3_PROGRESS_INTERVAL 'soon'"):
        progress_bar(total=3, file=io.StringIO())
