"""`inception-v3 reproduce` on the smoke budget: runs, records, the report and its figures, resuming."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from helpers import CLI, cli_in_process
from inception_v3.cli import main
from inception_v3.reproduction.experiments import EXPERIMENTS, run_config
from inception_v3.reproduction.report import verdict
from inception_v3.utils.precision import bf16_supported


def _args(out: Path, *experiments: str) -> list[str]:
    return ["reproduce", *experiments, "--budget", "smoke", "--seeds", "1", "--out-dir", str(out)]


def test_reproduce_resumes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rp"
    records = out / "records" / "smoke"
    # Interrupt the grid once the first run is recorded and the second has a checkpoint.
    proc = subprocess.Popen([*CLI, *_args(out, "label-smoothing")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})  # fmt: skip
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        started = [d for d in (out / "smoke").glob("*-seed0") if list(d.glob("checkpoints/step-*.pt"))]
        if len(list(records.glob("*.json"))) == 1 and len(started) == 2:
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 130 and "run the same command again" in log, log  # it really was interrupted
    first = sorted(records.glob("*.json"))
    assert first
    mtimes = {p: p.stat().st_mtime for p in first}
    # The rerun keeps finished runs and finishes the rest; crops reuse the eps 0.1 (= Inception-v3) run.
    done = cli_in_process(_args(out, "label-smoothing", "crops"), capsys)  # (a new process is not needed)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "done (" in done.stderr and "report: " in done.stdout  # the log on stderr, the result on stdout
    assert all(p.stat().st_mtime == t for p, t in mtimes.items())
    kinds = [json.loads(p.read_text())["kind"] for p in records.glob("*.json")]
    assert kinds.count("train") == 3 and kinds.count("crops") == 4  # single, 10, 144, ensemble of one
    record = json.loads(next(p for p in records.glob("*-seed0.json")).read_text())
    assert record["seed"] == 0 and record["curve"] and record["macs"] > 0 and "ece" in record["final"]["ema"]
    report = (out / "reproduction.md").read_text()
    assert "| eps 0.1 |" in report and "| 144 crops |" in report and "not distinguishable" in report
    # the recipe's amp "auto" ran in bf16 only where this CPU has it natively, and the run says which
    amp = "bf16" if bf16_supported(torch.device("cpu")) else "none"
    assert {json.loads((d / "config.json").read_text())["train"]["amp"] for d in (out / "smoke").iterdir()} == {amp}
    assert f"amp {amp};" in report
    assert (out / "reproduction" / "figures" / "smoke-label-smoothing.png").stat().st_size > 10_000
    # the report is rebuilt from the records alone
    (out / "reproduction.md").unlink()
    assert main(["reproduce", "--report-only", "--out-dir", str(out)]) == 0
    assert (out / "reproduction.md").read_text() == report


def test_shared_runs_are_trained_once() -> None:
    """Inception-v3 with eps 0.1 at the budget's 79x79 is one run in table2, table3, aux and label-smoothing."""
    ids = set()
    for name, variant in (("table2", "79"), ("table3", "+ BN-auxiliary (v3)"), ("aux", "with aux head"),
                          ("label-smoothing", "eps 0.1"), ("factorization", "ReLU + ReLU")):  # fmt: skip
        v = next(v for v in EXPERIMENTS[name].variants if v.name == variant)
        ids.add(run_config("cpu", v.overrides, 0, Path("runs"), None).name)
    assert len(ids) == 1
    assert run_config("cpu", {"preset": "inception_v2"}, 0, Path("runs"), None).name not in ids


def test_verdicts() -> None:
    claim = EXPERIMENTS["table3"].claims[0]  # RMSProp beats SGD

    def recs(*top1: float) -> list[dict]:
        return [{"final": {"ema": {"top1": t / 100}}} for t in top1]

    rows = {claim.better: recs(80, 81, 82), claim.worse: recs(70, 71, 72)}
    assert verdict(claim, rows)[1].startswith("reproduced")
    rows = {claim.better: recs(70, 71, 72), claim.worse: recs(80, 81, 82)}
    assert verdict(claim, rows)[1].startswith("not reproduced")
    rows = {claim.better: recs(70, 75, 80), claim.worse: recs(72, 73, 74)}
    assert verdict(claim, rows)[1].startswith("not distinguishable")
    assert verdict(claim, {claim.better: recs(80), claim.worse: []})[1] == "not run at this budget"


@pytest.mark.parametrize(("args", "message"), [
    (["nope"], "unknown experiment"),
    (["table2", "--budget", "huge"], "unknown budget"),
    (["table2", "--seeds", "0"], "--seeds"),
    (["table2", "--budget", "paper"], "--data-dir"),
    ([], "name at least one experiment"),
])  # fmt: skip
def test_bad_reproduce_input_is_one_line(args: list[str], message: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    try:
        code = main(["reproduce", *args, "--out-dir", str(tmp_path)])
    except SystemExit as exc:  # options argparse checks itself
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())
