"""Checkpoints are written atomically and loaded without running pickled code."""

import os
import pickle
import zipfile
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
    with pytest.raises(UserError, match=r"refusing checkpoint .*would run posix\.system"):  # a bare pickle
        load_checkpoint(path)
    torch.save({"model": Evil()}, tmp_path / "evil2.pt")  # torch's zip format
    with pytest.raises(UserError, match=r"refusing checkpoint .*would run posix\.system"):
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


def _state(step: int) -> dict:
    return {"format": CHECKPOINT_FORMAT, "model": {"w": torch.ones(2)}, "ema": {}, "optimizer": {}, "rng": {},
            "step": step, "classes": [], "model_config": {}, "train_config": {}}  # fmt: skip


def test_a_tampered_checkpoint_stops_every_resume_and_is_kept_as_evidence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A crash never writes code into a checkpoint: `--resume` and `--resume auto` stop with one line naming the
    file and what it would run, the file is moved aside (same bytes), nothing is trained or written, and the run
    stays stopped until someone moves the evidence out; `--overwrite` keeps it too."""
    from inception_v3.cli import main

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "r"
    write_checkpoint(run, _state(2), keep_last=5)
    evil = run / "checkpoints" / "step-00000004.pt"
    torch.save({"model": Evil()}, evil)
    payload = evil.read_bytes()
    args = ["train", "--recipe", "fashion-mnist", "--out-dir", str(tmp_path / "runs"), "--name", "r"]
    errors = []
    for resume in (["--resume"], ["--resume", "auto"], ["--resume", "auto"]):
        assert main([*args, *resume]) == 2
        errors.append(capsys.readouterr().err.strip().splitlines())
        assert len(errors[-1]) == 1 and "step-00000004.pt" in errors[-1][0], errors[-1]
    assert "loading it would run posix.system" in errors[0][0]  # then: the run holds it, move it out to resume
    assert all("holds a checkpoint that would run code" in e[0] for e in errors[1:])
    kept = run / "checkpoints" / "step-00000004.pt.tampered"
    assert kept.read_bytes() == payload and not (tmp_path / "pwned").exists()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000002.pt", kept.name]
    assert not (run / "config.json").exists() and not (run / "metrics.jsonl").exists()  # nothing ran
    cfg = get_recipe("fashion-mnist", out_dir=str(tmp_path / "runs"), name="r")
    (run / "config.json").write_text("{}")
    prepare_run_dir(cfg, "no", True, Dist())  # --overwrite: the run's files go, the evidence stays
    assert [p.name for p in (run / "checkpoints").iterdir()] == [kept.name] and not (run / "config.json").exists()


def test_every_loader_refuses_a_tampered_weights_file_and_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    from inception_v3 import load_pretrained
    from inception_v3.cli import main
    from inception_v3.errors import TamperedFile

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (32, 32)).save(tmp_path / "x.png")
    weights = tmp_path / "weights.pt"
    commands = [["evaluate", str(weights), "--dataset", "fashion-mnist", "--limit", "4"],
                ["predict", str(weights), str(tmp_path / "x.png")],
                ["export", str(weights), "--format", "torchscript", "--output", str(tmp_path / "m.pt")],
                ["features", str(tmp_path / "x.png"), "--weights", str(weights), "--output", str(tmp_path / "f.npz")],
                ["train", "--recipe", "fashion-mnist", "--init-from", str(weights), "--out-dir",
                 str(tmp_path / "runs")]]  # fmt: skip
    for k, command in enumerate(commands):
        torch.save({"state_dict": {"w": Evil()}}, weights)
        assert main(command) == 2, command
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "loading it would run posix.system" in err[0] and str(weights) in err[0], err
        kept = tmp_path / ("weights.pt.tampered" + (f"-{k + 1}" if k else ""))
        assert kept.is_file() and not weights.exists(), command
    torch.save({"w": Evil()}, weights)
    with pytest.raises(TamperedFile, match=r"would run posix\.system"):
        load_pretrained(str(weights))
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "m.pt").exists()


def test_truncated_empty_and_foreign_checkpoints_still_fall_back(tmp_path: Path, recwarn: pytest.WarningsRecorder
                                                                 ) -> None:  # fmt: skip
    """Damage is not tampering: each of these is skipped with a line, and the checkpoint before is used; a
    foreign pickle (numpy arrays, an argparse namespace) shows no torch warning."""
    import argparse

    import numpy as np

    from inception_v3.training.checkpoints import latest_good_checkpoint

    run = tmp_path / "run"
    for step in (2, 4, 6, 8):
        write_checkpoint(run, _state(step), keep_last=5)
    ckpts = run / "checkpoints"
    (ckpts / "step-00000008.pt").write_bytes(b"")  # empty
    whole = (ckpts / "step-00000006.pt").read_bytes()
    (ckpts / "step-00000006.pt").write_bytes(whole[: len(whole) // 2])  # truncated
    with open(ckpts / "step-00000004.pt", "wb") as f:  # another tool's pickle, protocol 4
        pickle.dump({"args": argparse.Namespace(lr=0.1), "w": np.ones(2)}, f, protocol=4)
    lines: list[str] = []
    found = latest_good_checkpoint(run, warn=lines.append)
    assert found is not None and found[1]["step"] == 2 and len(lines) == 3
    assert all("skipping damaged checkpoint" in line for line in lines)
    assert not [w for w in recwarn if "pickle" in str(w.message)] and not list(ckpts.glob("*.tampered*"))


def test_code_is_found_however_the_pickle_hides_it(tmp_path: Path) -> None:
    """PyTorch's legacy format (several pickles), protocol 0's INST, memo references, a bare pickle with a
    zip appended (torch reads the pickle): each is refused as tampered and moved aside; a foreign file
    (numpy, argparse, SimpleNamespace) is only unreadable."""
    import argparse
    import io
    import types

    import numpy as np

    from inception_v3.errors import TamperedFile
    from inception_v3.utils.io import load_torch_file

    legacy = io.BytesIO()
    torch.save({"m": Evil()}, legacy, _use_new_zipfile_serialization=False)
    harmless_zip = io.BytesIO()
    with zipfile.ZipFile(harmless_zip, "w") as z:
        z.writestr("a/data.pkl", pickle.dumps({"x": 1}))
    hostile = {
        "legacy": legacy.getvalue(),
        "inst": b"(S'touch pwned'\nios\nsystem\ntR.",
        "memo": b"\x80\x04}\x94\x8c\x02os\x94\x8c\x06system\x94\x93\x94.",
        "polyglot": pickle.dumps(Evil(), protocol=2) + harmless_zip.getvalue(),
    }
    for name, data in hostile.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(TamperedFile, match=r"would run (os|posix)\.system"):
            load_torch_file(tmp_path / name)
        assert (tmp_path / f"{name}.tampered").read_bytes() == data, name
    torch.save({"x": np.zeros(2), "a": argparse.Namespace(a=1), "n": types.SimpleNamespace(b=2)}, tmp_path / "f")
    with pytest.raises(UserError, match="another tool's file") as info:
        load_torch_file(tmp_path / "f")
    assert not isinstance(info.value, TamperedFile) and (tmp_path / "f").is_file()
    assert not (tmp_path / "pwned").exists()


def test_a_tampered_cached_download_is_kept_not_downloaded_over(tmp_path: Path) -> None:
    from inception_v3.errors import TamperedFile
    from inception_v3.utils.download import cache_path, fetch_url

    url = "http://127.0.0.1:9/weights/model-0123abcd.pth"
    cached = cache_path(url)
    cached.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"m": Evil()}, cached)
    with pytest.raises(TamperedFile, match="cached weights file"):
        fetch_url(url, sha256="0123abcd" + "0" * 56, progress=False)
    assert not cached.exists() and cached.with_name(cached.name + ".tampered").is_file()
