"""Fault injection: runs killed with SIGKILL at chosen and random moments (during a step, a checkpoint write,
an evaluation), a worker killed under `torchrun --max-restarts`, a damaged newest checkpoint, a full disk
while writing a checkpoint. Every interrupted run is continued with the same command (`--resume auto`)
and must end with weights and running average bit-identical to an uninterrupted run. The runs that are
killed have processes of their own; the uninterrupted run and the continuations run in the test's process
(one thread, as the others: the same bits).

Run the set alone with `make faults`."""

import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import CLI, cli_in_process
from inception_v3.training.checkpoints import load_checkpoint

pytestmark = pytest.mark.xdist_group("faults")  # its module fixture is built once

# Width 1/8 (checkpoints of a few MB, so a write takes long enough to be hit), 3 epochs of 10 steps,
# a checkpoint every 2 steps and a validation at every epoch end.
RUN = ["train", "--recipe", "fashion-mnist", "--width-multiplier", "0.125", "--min-depth", "8", "--batch-size", "16",
       "--workers", "0", "--amp", "none", "--train-subset", "160", "--val-subset", "96",
       "--epochs", "3", "--checkpoint-every", "2", "--keep-last", "2", "--precise-bn-images", "32",
       "--resume", "auto"]  # fmt: skip
# A progress line at every update (the log's lines are how a test sees where a run is)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "INCEPTION_V3_PROGRESS_INTERVAL": "0"}


def final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(sorted((run_dir / "checkpoints").glob("step-*.pt"))[-1])
    assert json.loads((run_dir / "final.json").read_text())["steps"] == state["step"]  # the last step's checkpoint
    return {"step": torch.tensor(state["step"]), **{f"model.{k}": v for k, v in state["model"].items()},
            **{f"ema.{k}": v for k, v in state["ema"]["module"].items()}}  # fmt: skip


def assert_identical(a: Path, b: Path) -> None:
    x, y = final_state(a), final_state(b)
    assert x.keys() == y.keys()
    different = [k for k in x if not torch.equal(x[k], y[k])]
    assert not different, f"{len(different)} tensors differ, first {different[:3]}"
    assert not list((b / "checkpoints").glob(".*.tmp")) and not list(b.glob(".*.tmp"))  # no temp files left


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("straight")
    assert cli_in_process([*RUN, "--out-dir", str(out), "--name", "run"]).returncode == 0
    return out / "run"


def start(out: Path, log: Path, **popen: object) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *RUN, "--out-dir", str(out), "--name", "run"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"), **popen)  # fmt: skip


def wait_for(proc: subprocess.Popen, condition: object, timeout: float = 300, poll: float = 0.0005) -> bool:
    """Poll `condition()` until it holds (True) or the process ends (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(poll)
    return False


def finish(out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> subprocess.CompletedProcess:
    """The same command once more (with `extra` options after it), undisturbed (in this process: only the
    runs that are killed need one of their own), with ENV's progress line at every update."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("INCEPTION_V3_PROGRESS_INTERVAL", ENV["INCEPTION_V3_PROGRESS_INTERVAL"])
        return cli_in_process([*RUN, "--out-dir", str(out), "--name", "run", *extra], capsys)


def test_sigkill_during_a_step_a_checkpoint_write_and_an_evaluation(
    straight: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpts = tmp_path / "run" / "checkpoints"
    log = tmp_path / "stderr.log"
    hits = {"step": 0, "checkpoint write": 0, "evaluation": 0}

    def progress() -> str:
        lines = log.read_bytes().decode(errors="ignore").strip().splitlines()
        return lines[-1] if lines else ""

    # 1. during a step: once the first epoch's progress bar is past step 3
    proc = start(tmp_path, log)
    assert wait_for(proc, lambda: re.search(r"epoch 1: ([3-9])/10", progress()), poll=0.01)
    proc.kill(), proc.wait()
    hits["step"] += 1
    # 2. during an evaluation: when the validation progress bar appears
    proc = start(tmp_path, log)
    assert wait_for(proc, lambda: "val (" in progress(), poll=0.002)
    proc.kill(), proc.wait()
    hits["evaluation"] += 1
    # 3. during a checkpoint write: the moment a temporary checkpoint file exists (a few tries)
    for _ in range(6):
        proc = start(tmp_path, log)
        if not wait_for(proc, lambda: any(ckpts.glob(".step-*.tmp"))):
            break  # the run finished before a write was caught
        proc.kill(), proc.wait()
        if any(ckpts.glob(".step-*.tmp")):  # killed mid-write: the temp file is still there
            hits["checkpoint write"] += 1
            break
    assert hits["checkpoint write"] == 1, "no SIGKILL landed inside a checkpoint write in 6 tries"
    done = finish(tmp_path, capsys)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"removed \d+ temporary file", done.stderr)  # the killed write's leftovers
    assert_identical(straight, tmp_path / "run")
    # the report counts the restarts and the training time of all launches, not only the last one
    resumed, uninterrupted = (json.loads((r / "final.json").read_text()) for r in (tmp_path / "run", straight))
    assert uninterrupted["resumes"] == 0 and "resumed" not in (straight / "report.md").read_text()
    assert (
        resumed["resumes"] >= 2
        and f"resumed {resumed['resumes']} times" in (tmp_path / "run" / "report.md").read_text()
    )
    assert resumed["train_seconds"] > 0.5 * uninterrupted["train_seconds"]


def test_sigkill_at_random_moments(straight: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(1234)
    kills = 0
    for _ in range(3):
        proc = start(tmp_path, tmp_path / "stderr.log")
        try:
            proc.wait(timeout=rng.uniform(3.0, 9.0))  # startup takes about 4 s; the run about 14 more
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            kills += 1
    assert kills >= 2
    done = finish(tmp_path, capsys)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_identical(straight, tmp_path / "run")


def test_damaged_newest_checkpoint_is_skipped(
    straight: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL after two checkpoints, the newest truncated: `--resume` skips it and ends bit-identical."""
    proc = start(tmp_path, tmp_path / "stderr.log")
    ckpts = tmp_path / "run" / "checkpoints"
    assert wait_for(proc, lambda: len(list(ckpts.glob("step-*.pt"))) >= 2, poll=0.01)
    proc.kill(), proc.wait()
    newest = sorted(ckpts.glob("step-*.pt"))[-1]
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated
    done = finish(tmp_path, capsys, "--resume")  # explicit --resume (the others continue with --resume auto)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"skipping damaged checkpoint {newest.name}" in done.stderr
    assert "\r" not in done.stderr + done.stdout  # a log, not a terminal: plain progress lines
    assert_identical(straight, tmp_path / "run")


def test_full_disk_while_writing_a_checkpoint(
    straight: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The file-size limit (set on the running process with prlimit) makes the next checkpoint write fail
    as on a full disk: one line, the previous checkpoint intact; with space back the run finishes."""
    ckpts = tmp_path / "run" / "checkpoints"
    proc = start(tmp_path, tmp_path / "stderr.log", preexec_fn=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN))
    assert wait_for(proc, lambda: any(ckpts.glob("step-*.pt")), poll=0.005)
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))  # checkpoints are a few MB
    assert proc.wait(timeout=300) == 2
    err = (tmp_path / "stderr.log").read_bytes().decode(errors="ignore")
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "the previous checkpoint is intact" in errors[0] and "File too large" in errors[0]
    kept = sorted(ckpts.glob("step-*.pt"))
    assert kept and load_checkpoint(kept[-1])["step"] > 0 and not list(ckpts.glob(".*.tmp"))
    done = finish(tmp_path, capsys)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_identical(straight, tmp_path / "run")


def children(pid: int) -> list[int]:
    """Direct child processes of `pid` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_torchrun_restarts_after_a_worker_is_killed(tmp_path: Path) -> None:
    """torchrun --max-restarts reruns the same command line; --resume auto continues from the newest
    checkpoint, and the result equals an uninterrupted torchrun run (2 CPU replicas, gloo)."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "--max-restarts", "3", "-m", "inception_v3.cli"]  # fmt: skip
    small = [*RUN, "--batch-size", "8", "--epochs", "1", "--out-dir", str(tmp_path)]  # 10 steps
    clean = subprocess.run([*torchrun, *small, "--name", "clean"], env=ENV, capture_output=True, text=True,
                           timeout=900)  # fmt: skip
    assert clean.returncode == 0, clean.stderr[-3000:]
    agent = subprocess.Popen([*torchrun, *small, "--name", "restarted"], env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    ckpts = tmp_path / "restarted" / "checkpoints"
    assert wait_for(agent, lambda: any(ckpts.glob("step-*.pt")), poll=0.01)
    workers = children(agent.pid)
    assert len(workers) == 2
    os.kill(workers[-1], signal.SIGKILL)
    _, err = agent.communicate(timeout=900)
    assert agent.returncode == 0, err[-3000:]
    # one restart, continued from a checkpoint (no attempt lost to a stale rendezvous: a restarted replica
    # once read the killed one's address from torchrun's store and failed to connect)
    assert err.count("resuming") == 1 and "Connection refused" not in err, err[-3000:]
    assert_identical(tmp_path / "clean", tmp_path / "restarted")
