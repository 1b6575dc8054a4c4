"""Checkpoints are written atomically and loaded without running pickled code."""

import os
import pickle
from pathlib import Path

import pytest
import torch

from inception_v3.errors import UserError
from inception_v3.training.checkpoints import (
    CHECKPOINT_FORMAT,
    all_rng_states,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    write_checkpoint,
)
from inception_v3.training.distributed import Dist
from inception_v3.training.recipes import get_recipe
from inception_v3.training.run_dir import prepare_run_dir


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


def test_resume_reads_checkpoints_to_the_cpu_whatever_the_device(tmp_path: Path) -> None:
    """A run on a GPU once read its checkpoint onto the GPU: the generators' states arrived as CUDA tensors
    and torch.set_rng_state raised. The meta device stands in for the GPU here (a state read onto it is
    as unusable); the checkpoint must come back on the CPU and restore the generator exactly."""
    torch.manual_seed(5)
    saved = all_rng_states()
    expected = torch.rand(4)
    state = {"format": CHECKPOINT_FORMAT, "model": {"w": torch.ones(2)}, "ema": {}, "optimizer": {}, "rng": saved,
             "step": 3, "classes": [], "model_config": {}, "train_config": {}}  # fmt: skip
    write_checkpoint(tmp_path / "run", state, keep_last=2)
    cfg = get_recipe("fashion-mnist", out_dir=str(tmp_path), name="run")
    found = prepare_run_dir(cfg, "yes", False, Dist(device=torch.device("meta"))).checkpoint
    assert found is not None
    loaded = found[1]
    assert loaded["model"]["w"].device.type == "cpu" and loaded["rng"][0]["torch"].device.type == "cpu"
    set_rng_state(loaded["rng"], rank=0)
    assert torch.equal(torch.rand(4), expected)


def test_each_replica_gets_its_own_generators_back() -> None:
    states = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        states.append(rng_state())
    for rank in (1, 0):
        set_rng_state(states, rank)
        assert torch.equal(torch.get_rng_state(), states[rank]["torch"])
    set_rng_state(states[1])  # a checkpoint written before per-replica states: one dict
    assert torch.equal(torch.get_rng_state(), states[1]["torch"])
    set_rng_state(states, rank=3)  # more replicas than were saved: rank 0's
    assert torch.equal(torch.get_rng_state(), states[0]["torch"])
