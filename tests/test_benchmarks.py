"""The benchmark runs end to end at its smoke size and its table renders (no timing assertions)."""

import copy
import json
import statistics
import weakref
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks import accuracy as accuracy_module
from benchmarks import peak, run, table
from inception_v3 import create_model
from inception_v3.weights import save_pretrained


def test_benchmark_smoke_and_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calibrated = []  # the int8 model stands in as an fp32 copy here: compiling it takes ~20 s, and the real one is
    # compiled and checked against fp32 in test_evaluate.py and test_readme.py; this checks the benchmark around it

    def int8_stand_in(model: torch.nn.Module, calibration: list[torch.Tensor]) -> torch.nn.Module:
        calibrated.append(torch.cat(calibration))
        return copy.deepcopy(model)

    monkeypatch.setattr(accuracy_module, "quantize_int8", int8_stand_in)
    model = create_model("inception_v3_79", num_classes=10, in_chans=1, mean=(0.5,), std=(0.5,),
                         width_multiplier=0.0625, min_depth=4)  # fmt: skip
    save_pretrained(model, tmp_path / "ckpt", classes=[str(i) for i in range(10)])
    out = tmp_path / "smoke.json"
    assert run.main(["--profile", "smoke", "--out", str(out), "--checkpoint", str(tmp_path / "ckpt")]) == 0
    result = json.loads(out.read_text())
    names = set(result["throughput"][0]["models"])
    assert {"torchvision", "timm", "ours", "ours-fast"} <= names
    assert {r["setting"]["task"] for r in result["throughput"]} == {"inference", "training"}
    for row in result["throughput"]:  # the reported numbers follow from the measured rounds
        base = row["models"]["torchvision"]["images_per_s"]
        for entry in row["models"].values():
            assert entry["images_per_s"] == pytest.approx(statistics.median(entry["rounds"]))
            assert entry["vs_torchvision"] == pytest.approx(entry["images_per_s"] / base)
    accuracy = result["accuracy"]
    assert accuracy["images"] == 64 and accuracy["fp32"]["agreement_with_fp32"] == 1.0
    for mode in ("fast", "int8"):
        change = 100 * (accuracy[mode]["top1"] - accuracy["fp32"]["top1"])
        assert accuracy[mode]["top1_change_points"] == pytest.approx(change, abs=1e-4)
    assert len(calibrated) == 1 and calibrated[0].shape == (256, 1, 79, 79)  # Fashion-MNIST training images
    memory = result["memory"]  # CPU: peak RSS of a fresh process per model, above a bare torch import
    assert all(v > memory["baseline_mib"] for key, row in memory.items() if key != "baseline_mib" for v in row.values())
    assert result["peak_flops"]["bf16"]["flops"] > 0 and len(result["data_pipeline"]) == 4
    text = "\n".join(table.render(result, str(out)))
    assert "### Inference" in text and "### Training" in text and "Fashion-MNIST" in text and "| int8 |" in text
    # a missing checkpoint is one clear error
    assert run.main(["--profile", "smoke", "--out", str(out), "--checkpoint", str(tmp_path / "nope")]) == 2


class LiveProducts(TorchDispatchMode):
    """The most matrix products alive at once (results of matmul, not written into a given buffer)."""

    def __init__(self) -> None:
        super().__init__()
        self.alive = self.most = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        if func in (torch.ops.aten.mm.default, torch.ops.aten.matmul.default):
            self.alive += 1
            self.most = max(self.most, self.alive)
            weakref.finalize(out, self._freed)
        return out

    def _freed(self) -> None:
        self.alive -= 1


def test_matmul_peak_holds_one_product_however_many_repetitions() -> None:
    """The peak measurement once kept every product of a timing alive while the repetitions doubled:
    hundreds of GiB on a fast GPU. Now the products share one output buffer."""
    with LiveProducts() as products:
        result = peak.matmul_peak(torch.device("cpu"), torch.float32, sizes=(64,), seconds=0.05)
    assert result["flops"] > 0 and result["tf32"] is False
    assert products.most <= 1


def test_fidelity_results_render_with_their_speedups() -> None:
    """The committed whole-process FID benchmark renders, and its ratios follow from its wall times."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "fidelity-cpu.json"
    result = json.loads(path.read_text())
    runs = result["runs"]
    for name in ("ours: fid", "ours (pytorch-fid convention)"):  # `fid` is fidelity's pytorch-fid convention
        mine = runs[name]
        assert mine["speedup_vs_pytorch-fid"] == pytest.approx(runs["pytorch-fid"]["seconds"] / mine["seconds"])
    assert runs["ours: fid"]["fid"] == runs["ours (pytorch-fid convention)"]["fid"]  # one code path: the same bits
    text = "\n".join(table.render(result, str(path)))
    assert "FID as whole processes" in text and "vs torch-fidelity" in text


def test_input_pipeline_benchmark_runs_every_format_and_decoder(tmp_path: Path) -> None:
    """At 8 images, one round: every format x decoder gives 3 x 299 x 299 inputs, and the table renders."""
    from benchmarks import input_pipeline

    data = input_pipeline.make_data(tmp_path, 8)
    funcs = input_pipeline.pipelines(data)
    outputs = [fn(3) for fn in funcs.values()]  # a tensor, or (tensor, label) from a dataset
    assert all((out[0] if isinstance(out, tuple) else out).shape == (3, 299, 299) for out in outputs)
    rows = input_pipeline.measure(funcs, 8, 1)
    assert len(rows) == 11 and all(r["images_per_s"] > 0 and r["cpu_s_per_image"] > 0 for r in rows.values())
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "input-pipeline-cpu.json"
    text = "\n".join(table.render(json.loads(path.read_text()), str(path)))
    assert "by format and decoder" in text and "| WebDataset shards, libjpeg-turbo: crop, flip |" in text


def test_shard_index_benchmark_measures_both_indexes(tmp_path: Path) -> None:
    """At 600 samples: both indexes measured, ours smaller and reading only the image bytes; the table renders."""
    from benchmarks import shard_index

    result = shard_index.measure(600, 3)
    old, new = result["rows"].values()
    assert new["bytes_per_sample"] < old["bytes_per_sample"] and new["read_per_image_byte"] == 1.0
    assert old["read_per_image_byte"] > 10 and new["build_samples_per_s"] > 0
    machine = {"cpu_model": "cpu", "cpus": 2, "torch": "2"}
    run = {"benchmark": "shard-index", "date": "now", "command": "x", "buffer_bytes": 1 << 24, "machine": machine}
    text = "\n".join(table.render({**run, **result}, "x.json"))
    assert "Shard index at scale" in text and "ImageNet-21k" in text


def test_scoring_loops_benchmark_runs_both_metric_objects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At 4 images a side: ours and torchmetrics' FID objects updated and timed, their FIDs close."""
    from benchmarks import scoring_loops
    from inception_v3 import create_model

    weights = tmp_path / "torch" / "hub" / "checkpoints" / scoring_loops.TF_NAME
    weights.parent.mkdir(parents=True)
    torch.save(create_model("inception_v3_fid").eval().state_dict(), weights)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    fake, real = scoring_loops.images(4, 32, 0, 0), scoring_loops.images(4, 32, 40, 1)
    rows = scoring_loops.updates(fake, real, str(weights), rounds=1, batch=3, feature=64)
    assert rows["ours"]["relative_fid_difference"] < 1e-3 and rows["ours"]["speedup_vs_torchmetrics"] > 0
