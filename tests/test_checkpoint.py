"""Checkpoints are written atomically and loaded without running pickled code."""

import os
import pickle
from pathlib import Path

import pytest
import torch

from inception_v3.errors import UserError
from inception_v3.training.checkpoints import load_checkpoint, save_checkpoint


class Evil:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch pwned",))


def test_malicious_pickle_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": Evil()}, f)
    with pytest.raises(UserError, match=r"refusing to load|not a PyTorch file"):
        load_checkpoint(path)
    torch.save({"model": Evil()}, tmp_path / "evil2.pt")
    with pytest.raises(UserError, match=r"refusing to load .*posix\.system"):
        load_checkpoint(tmp_path / "evil2.pt")
    assert not (tmp_path / "pwned").exists()


def test_round_trip_and_damaged_files(tmp_path: Path) -> None:
    state = {"model": {"w": torch.ones(2)}, "step": 3, "classes": ["a", "b"], "rng": torch.get_rng_state()}
    save_checkpoint(state, tmp_path / "c.pt")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == 0o666 & ~mask  # like any file the user writes
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["step"] == 3 and torch.equal(loaded["model"]["w"], torch.ones(2))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    save_checkpoint({"step": 1}, path)
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        save_checkpoint({"step": 2, "bad": lambda: None}, path)  # not picklable: the write fails midway
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind
