"""The first-GPU-run check: every path that runs under `--device cuda`, one line per check and a summary.

Run by `scripts/gpu_check.sh` (in under 5 minutes on one GPU). It makes its own small image folder, so it
needs no data set and no network: training steps in fp16 and bf16 with channels_last (one with
torch.compile, one at the full 299x299 size), SIGKILL during a run and `--resume` with bit-identical
weights, checkpoints readable on a CPU-only machine, `evaluate`/`predict`/`features`/`fid` on CUDA against
the same commands on the CPU, the exported graphs run on CUDA, and the fast path (BN folded, bf16).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

CLI = [sys.executable, "-m", "inception_v3.cli"]
# GPU_CHECK_DEVICE=cpu runs the same checks on the CPU (fp16 becomes bf16): a dry run of this script itself
DEVICE = os.environ.get("GPU_CHECK_DEVICE", "cuda")
FP16 = "fp16" if DEVICE == "cuda" else "bf16"
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
# GPU_CHECK_SKIP=bf16_compile,full_size leaves out checks by function name (the CPU dry run's slow ones)
SKIP = set(filter(None, os.environ.get("GPU_CHECK_SKIP", "").split(",")))
SMALL = ["--preset", "inception_v3_79", "--width-multiplier", "0.25", "--min-depth", "8"]


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    done = subprocess.run([*CLI, *args], env=ENV, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"`inception-v3 {' '.join(args[:2])}` exited {done.returncode}: {done.stderr[-800:]}")
    return done


def make_images(root: Path, per_class: int, classes: int = 4, size: tuple[int, int] = (96, 80)) -> Path:
    """A class-per-folder tree of PNGs whose classes differ in colour, so a few steps already learn."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 96, (size[1], size[0], 3), dtype=np.uint8)
            pixels[..., c % 3] += np.uint8(100 + 40 * (c // 3))
            Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    state = torch.load(sorted((run / "checkpoints").glob("step-*.pt"))[-1], weights_only=True)
    return {**{f"model.{k}": v for k, v in state["model"].items()},
            **{f"ema.{k}": v for k, v in state["ema"]["module"].items()}}  # fmt: skip


def train_args(data: Path, out: Path, name: str, *extra: str, model: tuple[str, ...] = tuple(SMALL)) -> list[str]:
    return ["train", "--recipe", "fashion-mnist", "--dataset", "imagefolder", "--data-dir", str(data),
            "--device", DEVICE, "--out-dir", str(out), "--name", name, *model, "--workers", "2", "--val-subset",
            "64", "--precise-bn-images", "64", *extra]  # fmt: skip


class Checks:
    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []

    def run(self, name: str, fn: Callable[[], str]) -> None:
        if fn.__name__ in SKIP:
            print(f"SKIP  {name}", flush=True)
            return
        start = time.time()
        try:
            detail, ok = fn(), True
        except Exception as exc:  # a check that fails says why and the others still run
            detail, ok = f"{type(exc).__name__}: {exc}".strip(), False
            if not isinstance(exc, AssertionError):
                detail += " | " + traceback.format_exc(limit=3).strip().splitlines()[-1]
        seconds = time.time() - start
        self.results.append({"check": name, "ok": ok, "seconds": round(seconds, 1), "detail": detail})
        print(f"{'PASS' if ok else 'FAIL'}  {name:<44} {seconds:6.1f} s  {detail}", flush=True)


def main() -> int:
    out_json = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/gpu-check-cuda.json")
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible; run this on a GPU machine", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU (dry run)"
    print(f"torch {torch.__version__}, {name}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    train_dir = make_images(tmp / "data" / "train", per_class=64)
    make_images(tmp / "data" / "val", per_class=32)
    data, runs = tmp / "data", tmp / "runs"
    checks = Checks()

    def fp16() -> str:  # GradScaler, an overflowing first scale skipped and lowered, --on-nonfinite skip
        cli(*train_args(data, runs, "fp16", "--amp", FP16, "--channels-last", "--epochs", "1", "--batch-size",
                        "32", "--on-nonfinite", "skip"))  # fmt: skip
        final = json.loads((runs / "fp16" / "final.json").read_text())
        assert final["steps"] == 8 and np.isfinite(final["raw"]["loss"]) and np.isfinite(final["ema"]["loss"]), final
        return f"8 steps ({final['skipped_nonfinite_steps']} non-finite), val loss {final['raw']['loss']:.3f}"

    def bf16_compile() -> str:
        cli(*train_args(data, runs, "bf16c", "--amp", "bf16", "--channels-last", "--compile", "--epochs", "1",
                        "--batch-size", "32"), timeout=280)  # fmt: skip
        final = json.loads((runs / "bf16c" / "final.json").read_text())
        return f"8 steps, val top-1 {final['raw']['top1']:.3f}"

    def full_size() -> str:  # the released architecture at 299x299, aux head on
        full = ("--preset", "inception_v3", "--width-multiplier", "1", "--min-depth", "16")
        cli(*train_args(data, runs, "full", "--amp", "bf16", "--channels-last", "--epochs", "1", "--batch-size", "32",
                        "--train-subset", "128", "--val-subset", "32", "--precise-bn-images", "32",
                        model=full))  # fmt: skip
        config = json.loads((runs / "full" / "config.json").read_text())["model"]
        assert config["receptive_field"] == 299 and config["width_multiplier"] == 1.0, config
        return f"{json.loads((runs / 'full' / 'final.json').read_text())['steps']} steps of 32 at 299x299, full width"

    def kill_and_resume() -> str:
        extra = ("--amp", "bf16", "--channels-last", "--epochs", "2", "--batch-size", "16", "--checkpoint-every",
                 "4", "--deterministic", "--workers", "0")  # fmt: skip
        cli(*train_args(data, runs, "straight", *extra))
        killed = train_args(data, runs, "killed", *extra)
        proc = subprocess.Popen([*CLI, *killed], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ckpts = runs / "killed" / "checkpoints"
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and len(list(ckpts.glob("step-*.pt"))) < 2:
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        at = max(int(p.stem.split("-")[1]) for p in ckpts.glob("step-*.pt"))
        resumed = cli(*killed, "--resume")
        assert "resuming" in resumed.stderr, resumed.stderr[-500:]
        a, b = final_weights(runs / "straight"), final_weights(runs / "killed")
        different = [k for k in a if not torch.equal(a[k], b[k])]
        assert not different, f"{len(different)} tensors differ after resuming, first {different[:2]}"
        return f"killed after step {at}, resumed: {len(a)} tensors bit-identical"

    def checkpoints_on_cpu() -> str:  # what a CPU-only machine's plain torch.load gets
        path = sorted((runs / "straight" / "checkpoints").glob("step-*.pt"))[-1]
        state = torch.load(path, weights_only=True)
        devices = set()

        def walk(obj: Any) -> None:
            if isinstance(obj, torch.Tensor):
                devices.add(obj.device.type)
            elif isinstance(obj, dict):
                [walk(v) for v in obj.values()]
            elif isinstance(obj, (list, tuple)):
                [walk(v) for v in obj]

        walk(state)
        assert devices == {"cpu"}, devices
        return f"{path.name}: every tensor on the CPU"

    best = runs / "fp16" / "best.pt"

    def evaluate() -> str:
        r = {d: json.loads(cli("evaluate", str(best), "--data", str(data / "val"), "--device", d, "--json").stdout)
             for d in (DEVICE, "cpu")}  # fmt: skip
        assert r[DEVICE]["device"] == DEVICE and abs(r[DEVICE]["top1"] - r["cpu"]["top1"]) <= 2 / 64, r
        fast = json.loads(cli("evaluate", str(best), "--data", str(data / "val"), "--device", DEVICE, "--mode",
                              "fast", "--json").stdout)  # fmt: skip
        # a model of 8 steps is near chance, where bf16 flips close calls: a plumbing check, loosely bounded
        assert abs(fast["top1"] - r["cpu"]["top1"]) <= 0.15, (fast["top1"], r["cpu"]["top1"])
        return f"top-1 {DEVICE} {r[DEVICE]['top1']:.4f} / cpu {r['cpu']['top1']:.4f} / {DEVICE} fast {fast['top1']:.4f}"

    def predict() -> str:
        images = [str(p) for p in sorted((data / "val" / "class1").glob("*.png"))[:4]]
        r = {d: json.loads(cli("predict", str(best), *images, "--device", d, "--json").stdout) for d in (DEVICE, "cpu")}
        for a, b in zip(r[DEVICE], r["cpu"], strict=True):
            assert abs(a["top"][0]["probability"] - b["top"][0]["probability"]) < 1e-2, (a, b)
        return f"{len(images)} images, top-1 probabilities within 1e-2 of the CPU's"

    def features() -> str:
        outs = {}
        for d in (DEVICE, "cpu"):
            out = tmp / f"features-{d}-{len(outs)}.npz"
            cli("features", str(data / "val"), "--weights", str(best), "--output", str(out), "--taps", "64,768",
                "--device", d)  # fmt: skip
            outs[d] = np.load(out)["features"]
        rel = float(np.abs(outs[DEVICE] - outs["cpu"]).max() / np.abs(outs["cpu"]).max())
        assert rel < 2e-2, rel  # TF32 convolutions on the GPU
        return f"{outs[DEVICE].shape}, largest difference {rel:.1e} of the largest feature"

    def jpeg_decode() -> str:
        import io

        from inception_v3.data.image_io import Encoded, decode_batch, decode_image_bytes

        items = []
        for k, path in enumerate(sorted((data / "val").rglob("*.png"))[:16]):
            buffer = io.BytesIO()
            with Image.open(path) as im:
                (im.convert("L") if k % 4 == 0 else im).save(buffer, format="JPEG", quality=90)
            items.append(Encoded(buffer.getvalue(), str(path)))
        items.append(Encoded(b"\xff\xd8\xff not a jpeg", "broken.jpg"))
        got = decode_batch(items[:-1], torch.device(DEVICE))
        want = [decode_image_bytes(it.data, it.name) for it in items[:-1]]
        assert all(g.device.type == DEVICE and g.shape == w.shape for g, w in zip(got, want, strict=True))
        worst = max(int((g.cpu().int() - w.int()).abs().max()) for g, w in zip(got, want, strict=True))
        assert worst <= 8, worst  # nvjpeg's IDCT is not libjpeg-turbo's: a few levels at most
        try:
            decode_batch(items, torch.device(DEVICE))
        except Exception as exc:  # the broken one is named by the CPU fallback
            assert "broken.jpg" in str(exc), exc
        else:
            raise AssertionError("a broken JPEG decoded")
        return f"{len(want)} JPEGs (gray and RGB) batched, largest pixel difference to libjpeg-turbo {worst}"

    def fid() -> str:
        from inception_v3 import create_model, save_pretrained

        net = create_model("inception_v3_fid", bn_momentum=1.0)
        files = sorted(train_dir.rglob("*.png"))[::8]  # realistic batch-norm statistics: those of these images
        pixels = torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1) for f in files])
        pixels = torch.nn.functional.interpolate(pixels.float(), size=(299, 299), mode="bilinear") / 127.5 - 1
        with torch.no_grad():  # one pass over all four classes (a batch of one class would skew them)
            net.train()(pixels)
        save_pretrained(net.eval(), tmp / "fid-net")
        value = {d: json.loads(cli("fid", str(train_dir), str(data / "val"), "--weights", str(tmp / "fid-net"),
                                   "--dims", "64", "--device", d, "--json").stdout)["fid"]  # 256 vs 128 images
                 for d in (DEVICE, "cpu")}  # fmt: skip
        assert abs(value[DEVICE] - value["cpu"]) <= 1e-2 * abs(value["cpu"]), value
        return f"FID {DEVICE} {value[DEVICE]:.6g} / cpu {value['cpu']:.6g}"

    def fidelity() -> str:  # IS, FID, KID and precision/recall with the resize on the GPU, against the CPU
        args = [str(train_dir), str(data / "val"), "--isc", "--fid", "--kid", "--prc", "--dims", "64",
                "--kid-subset-size", "100", "--weights", str(tmp / "fid-net"), "--no-cache", "--json"]  # fmt: skip
        r = {d: json.loads(cli("fidelity", *args, "--device", d).stdout) for d in (DEVICE, "cpu")}
        for key, value in r["cpu"].items():
            assert abs(r[DEVICE][key] - value) <= 1e-3 * abs(value) + 1e-9, (key, r[DEVICE][key], value)
        return f"{len(r['cpu'])} scores within 1e-3 of the CPU's (IS {r[DEVICE]['inception_score_mean']:.4f})"

    def fidelity_torchrun() -> str:  # the images split across processes (one per GPU, NCCL), gathered in order
        procs = max(1, min(2, torch.cuda.device_count())) if DEVICE == "cuda" else 2
        args = ["fidelity", str(train_dir), str(data / "val"), "--isc", "--fid", "--kid", "--dims", "64",
                "--kid-subset-size", "100", "--weights", str(tmp / "fid-net"), "--no-cache", "--json", "--device",
                DEVICE]  # fmt: skip
        one = json.loads(cli(*args).stdout)
        run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs), "-m",
               "inception_v3.cli", *args]  # fmt: skip
        done = subprocess.run(run, env=ENV, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-800:]
        two = json.loads(done.stdout[done.stdout.index("{") :])
        for key, value in one.items():
            assert abs(two[key] - value) <= 1e-3 * abs(value) + 1e-9, (key, two[key], value)
        backend = "NCCL" if DEVICE == "cuda" else "gloo"
        return f"{procs} process(es) on {backend} within 1e-3 of one: {len(one)} scores"

    def export() -> str:
        x = torch.randn(4, 3, 79, 79)
        from inception_v3 import load_pretrained

        model = load_pretrained(str(best))[0].eval()
        with torch.no_grad():
            want = model(x)
        lines = []
        for fmt, suffix in (("exported-program", "pt2"), ("torchscript", "pt")):
            path = tmp / f"model.{suffix}"
            cli("export", str(best), "--format", fmt, "--output", str(path))
            net = torch.export.load(path).module() if fmt == "exported-program" else torch.jit.load(path)
            net = net.to(DEVICE)
            with torch.no_grad():
                got = net(x.to(DEVICE)).cpu()
            rel = float((got - want).abs().max() / want.abs().max())
            assert rel < 2e-2 and bool((got.argmax(1) == want.argmax(1)).all()), (fmt, rel)
            lines.append(f"{fmt} on {DEVICE} {rel:.1e}")
        return ", ".join(lines)

    def fast_path() -> str:
        from inception_v3 import load_pretrained
        from inception_v3.inference import fast_inference

        model = load_pretrained(str(best))[0].eval()
        x = torch.randn(16, 3, 79, 79)  # a CPU tensor: the fast path moves it
        fast = fast_inference(model, DEVICE)
        with torch.no_grad():
            got, want = fast(x), model(x)
        assert got.device.type == DEVICE and got.dtype == torch.float32
        agree = float((got.cpu().argmax(1) == want.argmax(1)).float().mean())
        assert agree >= 0.8, agree
        return f"{fast.dtype}, top-1 agreement with fp32 CPU {agree:.2f}"

    checks.run("train fp16 + channels_last (GradScaler)", fp16)
    checks.run("train bf16 + channels_last + compile", bf16_compile)
    checks.run("train full 299x299 bf16", full_size)
    checks.run("SIGKILL + --resume bit-identical", kill_and_resume)
    checks.run("checkpoints hold CPU tensors", checkpoints_on_cpu)
    checks.run("evaluate --device cuda (fp32, fast)", evaluate)
    checks.run("predict --device cuda", predict)
    checks.run("features --device cuda", features)
    checks.run("JPEG decoding batched on the GPU (nvjpeg)", jpeg_decode)
    checks.run("fid --device cuda", fid)
    checks.run("fidelity --device cuda (resize on the GPU)", fidelity)
    checks.run("fidelity under torchrun (NCCL, a process per GPU)", fidelity_torchrun)
    checks.run("export, served on cuda", export)
    checks.run("fast path on cuda (Python API)", fast_path)
    passed = sum(r["ok"] for r in checks.results)
    failed = len(checks.results) - passed
    summary = {"device": name, "torch": torch.__version__,
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "checks": checks.results}  # fmt: skip
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(summary, indent=1))
    print(f"gpu_check: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
