"""Regenerate docs/performance.md from the JSON results: `python -m benchmarks.table`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

COLUMNS = ("torchvision", "timm", "ours", "ours-fast", "ours-int8")
INFERENCE_TARGET, TRAINING_TARGET = 2.0, 1.5


def _rate(row: dict[str, Any], name: str) -> float | None:
    entry = row["models"].get(name)
    return None if entry is None else entry["images_per_s"]


def find(rows: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["setting"]["key"] == key), None)


def targets(result: dict[str, Any]) -> list[str]:
    """The issue's two targets at batch 32, from rows of the same run."""
    rows = result.get("throughput", [])
    lines = []
    base = find(rows, "inference/fp32/nchw/eager/bs32")
    fast = [r for r in (find(rows, "inference/bf16/channels_last/eager/bs32"),
                        find(rows, "inference/bf16/channels_last/compile/bs32")) if r]  # fmt: skip
    if base and fast:
        tv = _rate(base, "torchvision")
        for r in fast:
            ratio = (_rate(r, "ours-fast") or 0) / tv
            ok = "met" if ratio >= INFERENCE_TARGET else "not met"
            lines.append(f"- Inference, batch 32: ours fast path ({r['setting']['mode']}: BN folded, channels_last, "
                         f"bf16) {_rate(r, 'ours-fast'):.1f} images/s vs torchvision eager fp32 NCHW {tv:.1f}: "
                         f"**{ratio:.2f}x** (target {INFERENCE_TARGET}x: {ok})")  # fmt: skip
    base = find(rows, "training/fp32/nchw/eager/bs32")
    ours = find(rows, "training/bf16/channels_last/eager/bs32")
    if base and ours:
        timm = _rate(base, "timm") or 0
        ratio = (_rate(ours, "ours") or 0) / timm
        ok = "met" if ratio >= TRAINING_TARGET else "not met"
        lines.append(f"- Training, batch 32: ours (bf16 autocast, channels_last) {_rate(ours, 'ours'):.1f} img/s vs "
                     f"timm eager fp32 NCHW {timm:.1f}: **{ratio:.2f}x** "
                     f"(target {TRAINING_TARGET}x: {ok})")  # fmt: skip
    return lines


def _memory(row: dict[str, Any], name: str, memory: dict[str, Any]) -> str:
    """CPU: peak RSS of a fresh process (benchmarks/memory.py); GPU: allocator peak during the timing."""
    value = memory.get(row["setting"]["key"], {}).get(name, row["models"][name].get("peak_mib"))
    return "-" if value is None else f"{value:.0f}"


def throughput_table(rows: list[dict[str, Any]], task: str, memory: dict[str, Any]) -> list[str]:
    out = ["| setting | torchvision img/s | timm | ours | ours fast path | ours int8 | ours FLOP utilization | "
           "peak MiB (tv / timm / ours) |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        s = r["setting"]
        if s["task"] != task:
            continue
        cells = [f"{_rate(r, 'torchvision'):.1f}"]
        for name in COLUMNS[1:]:
            entry = r["models"].get(name)
            cells.append("-" if entry is None else f"{entry['vs_torchvision']:.2f}x")
        util = r["models"]["ours"].get("flop_utilization")
        cells.append("-" if util is None else f"{util:.1%}")
        cells.append(" / ".join(_memory(r, n, memory) for n in COLUMNS[:3]))
        out.append(f"| {s['dtype']}, {s['layout']}, {s['mode']}, batch {s['batch']} | " + " | ".join(cells) + " |")
    return out


def _memory_note(result: dict[str, Any]) -> str:
    if result["device"] == "cuda":
        return "Peak MiB: the CUDA allocator's peak above the model's weights during the timed steps."
    base = result.get("memory", {}).get("baseline_mib")
    if base is None:
        return "Peak MiB: not measured in this run."
    return (
        f"Peak MiB (CPU): the peak resident set of a fresh process that builds one model and runs two steps "
        f"(batch 32 rows and training only); a process that only imports torch peaks at {base:.0f} MiB."
    )


def header(title: str, result: dict[str, Any], source: str, what: str, columns: list[str]) -> list[str]:
    """A section's title, where its numbers come from (file, date, command, torch) and what was measured, and
    its table's head."""
    m = result["machine"]
    return [f"## {title}", "", f"From `{source}`, measured {result['date']} with `{result['command']}` (torch "
            f"{m['torch']}): {what}", "", "| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]  # fmt: skip


def render_fidelity(result: dict[str, Any], source: str) -> list[str]:
    """FID as whole processes: the reference tools' command lines against ours in their conventions."""
    r, m = result, result["machine"]
    lines = header(f"Scoring generated images: FID as whole processes ({r['device']}, {m['cpus']} cores)", r, source,
                   f"two folders of {r['images_per_input']} PNGs of {r['image_size']}x{r['image_size']}, the "
                   f"{r['dims']}-d tap, one network file for all, {r['workers']} decoding workers for ours and "
                   "pytorch-fid, startup included.",
                   ["process", "wall time", "FID", "speed-up", "FID difference"])  # fmt: skip
    for name, row in result["runs"].items():
        speed = next((f"{v:.2f}x vs {k.removeprefix('speedup_vs_')}" for k, v in row.items()
                      if k.startswith("speedup")), "")  # fmt: skip
        diff = next((f"{v:.1e}" for k, v in row.items() if k.startswith("relative_fid")), "")
        lines.append(f"| {name} | {row['seconds']:.1f} s | {row['fid']:.6f} | {speed} | {diff} |")
    return [*lines, ""]


def render_input_pipeline(result: dict[str, Any], source: str) -> list[str]:
    """The training input pipeline per worker, by format and JPEG decoder, against torchvision's."""
    r, m = result, result["machine"]
    cpu = m.get("cpu_model") or m["processor"]
    lines = header(f"Training input pipeline per worker, by format and decoder ({cpu})", r, source,
                   f"{r['images']} {r['image']} images to {r['output']} training inputs, one process and one thread "
                   "(a DataLoader worker), pipelines interleaved over rounds, medians. CPU time per image "
                   "is process time: what a worker spends, whatever the storage.",
                   ["pipeline", "images/s per worker", "CPU ms per image", "vs torchvision"])  # fmt: skip
    for name, row in result["pipelines"].items():
        lines.append(f"| {name} | {row['images_per_s']:.0f} | {row['cpu_s_per_image'] * 1e3:.2f} | "
                     f"{row['vs_torchvision']:.2f}x |")  # fmt: skip
    return [*lines, ""]


def render_shard_index(result: dict[str, Any], source: str) -> list[str]:
    """The shard index at scale against the index it replaced, and its ImageNet extrapolations."""
    r, m = result, result["machine"]
    lines = header(f"Shard index at scale ({m['cpu_model']}, {m['cpus']} cores)", r, source,
                   f"{r['samples']:,} tiny samples in {r['shards']} shards written by webdataset's TarWriter; two "
                   f"forked workers each read {r['share_read_by_workers']:.0%} of the samples in random order; reads "
                   f"counted with a {r['buffer_bytes'] >> 20} MiB file-system buffer.",
                   ["index", "bytes per sample", "build (samples/s)", "worker private MiB after its share",
                    "bytes read per image byte"])  # fmt: skip
    for name, r in result["rows"].items():
        lines.append(f"| {name} | {r['bytes_per_sample']:.0f} | {r['build_samples_per_s']:,.0f} | "
                     f"{r['worker_private_mib']:.1f} | {r['read_per_image_byte']:.1f} |")  # fmt: skip
    lines += ["", "Extrapolated (index size and build time from the rows above; reads for 110 kB images, with shards "
              "larger than the buffer):", "", "| data set | index | MiB per process (ours: one memory-mapped copy per "
              "machine) | build, minutes (previous: every process; ours: once per machine) | bytes read per image "
              "byte |", "|---|---|---|---|---|"]  # fmt: skip
    for data, e in result["imagenet"].items():
        for name, r in e.items():
            if isinstance(r, dict):
                lines.append(f"| {data} ({e['samples']:,} samples) | {name} | {r['index_mib_per_process']:,.0f} | "
                             f"{r['build_minutes']:.1f} | {r['read_per_image_byte']:.0f} |")  # fmt: skip
    return [*lines, ""]


def render_scoring_loops(result: dict[str, Any], source: str) -> list[str]:
    """Metric objects against torchmetrics', torchmetrics' defaults, and fidelity under torchrun."""
    m, u, t, n = result["machine"], result["updates"], result["torchrun"], result["images_per_side"]
    lines = header(f"Scoring in training loops ({m['cpu_model']}, {m['cpus']} cores)", result, source,
                   f"{n} real and {n} fake uint8 images of {result['size']}x{result['size']}, batches of 32, pool3, "
                   "torch-fidelity's convention.",
                   ["FID metric object", "images/s (update)", "FID", "vs torchmetrics"])  # fmt: skip
    for name, r in u.items():
        ratio = (
            f"{r['speedup_vs_torchmetrics']:.2f}x, FID {r['relative_fid_difference']:.1e} apart"
            if name == "ours"
            else ""
        )
        lines.append(f"| {name} | {r['images_per_s']:.1f} | {r['fid']:.6g} | {ratio} |")
    lines += ["", "torchmetrics' defaults against torch-fidelity's numbers (ours in its convention):", "",
              "| metric | torchmetrics default | torch-fidelity's | relative difference |",
              "|---|---|---|---|"]  # fmt: skip
    for name, r in result["defaults"].items():
        theirs = r.get("torchmetrics_default", r.get("torchmetrics_default_runs"))
        lines.append(f"| {name} | {theirs} | {r['torch_fidelity']} | {r['relative_difference']:.2e} |")
    lines += ["", "`inception-v3 fidelity --fid` under torchrun, as whole processes:", "",
              "| processes | wall time | FID |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {name} | {r['seconds']:.1f} s | {r['fid']:.6g} |" for name, r in t.items()]
    return [*lines, ""]


def render(result: dict[str, Any], source: str) -> list[str]:
    if result.get("benchmark") == "scoring-loops":
        return render_scoring_loops(result, source)
    if result.get("benchmark") == "shard-index":
        return render_shard_index(result, source)
    if result.get("benchmark") == "fidelity":
        return render_fidelity(result, source)
    if result.get("benchmark") == "input-pipeline":
        return render_input_pipeline(result, source)
    m = result["machine"]
    threads = f", {m['threads']} threads" if "threads" in m else ""
    where = m.get("gpu") or f"{m['processor']} ({m['cpus']} cores{threads}, {m['cpu_capability']})"
    lines = [f"## {where}: profile `{result['profile']}`", "",
             f"From `{source}`, measured {result['date']} with `{result['command']}` (torch {m['torch']}, "
             f"{result['seconds'] / 60:.0f} min)" + "".join(f", then `{c}`" for c in result.get("more_commands", []))
             + ".", ""]  # fmt: skip
    if result["profile"] == "learning-margin":
        t = result["thresholds"]
        lines += [f"### Learning margin of the suite's learning test (thresholds: best top-1 > {t['best_top1']}, "
                  f"raw validation loss < {t['raw_loss']})", "",
                  "| precision | seed | best top-1 | averaged | raw | raw val loss |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {r['amp']} | {r['seed']} | {r['best_top1']:.3f} | {r['ema_top1']:.3f} | {r['raw_top1']:.3f} | "
                  f"{r['raw_loss']:.2f} |" for r in result["runs"]]  # fmt: skip
        lines.append("")
        tuned = [r for r in result["runs"] if "finetune" in r]
        if tuned:
            lines += [f"### Fine-tuning test: classes 5-9 from the fp32 run vs from scratch, same budget (threshold: "
                      f"gain > {t['finetune_gain']})", "",
                      "| seed | fine-tuned | scratch (finetune recipe) | scratch (RMSProp, lr 0.1) | gain |",
                      "|---|---|---|---|---|"]  # fmt: skip
            lines += [f"| {r['seed']} | {f['tuned']:.3f} | {f['scratch']:.3f} | {f['scratch_rmsprop']:.3f} | "
                      f"{f['gain']:+.3f} |" for r in tuned for f in [r["finetune"]]]  # fmt: skip
            lines.append("")
    if "training_loop" in result:
        lines += ["### Training loop: this checkout vs an earlier revision (real `inception-v3 train` runs, "
                  "interleaved, median over rounds)", "",
                  f"| workload | baseline {result['baseline']} | this checkout | ratio |",
                  "|---|---|---|---|"]  # fmt: skip
        for row in result["training_loop"]:
            rates = list(row["images_per_s"].values())
            lines.append(f"| {row['workload']} | {rates[0]:.1f} img/s | {rates[1]:.1f} img/s | {row['ratio']:.2f}x |")
        lines.append("")
    if "peak_flops" in result:
        p, f = result["peak_flops"], result["model_flops_per_image"]
        fp32 = "fp32 (TF32, as the convolutions)" if p["fp32"].get("tf32") else "fp32"
        lines += [f"Measured matmul peak: {fp32} {p['fp32']['flops'] / 1e9:.0f} GFLOP/s, bf16 "
                  f"{p['bf16']['flops'] / 1e9:.0f} GFLOP/s. Model: {f['inference'] / 1e9:.2f} GFLOP per image "
                  f"(inference), {f['training'] / 1e9:.2f} GFLOP per training image (3 x forward with the aux head).",
                  "", "### Targets", "", *targets(result), "",
                  "### Inference (images/s of torchvision; the others as ratios to it, same run, interleaved)", "",
                  *throughput_table(result.get("throughput", []), "inference", result.get("memory", {})), "",
                  "### Training (SGD step, loss on main + 0.4 x aux; all three with the aux head)", "",
                  *throughput_table(result.get("throughput", []), "training", result.get("memory", {})), "",
                  _memory_note(result)]  # fmt: skip
    if "data_pipeline" in result:
        lines += ["### Data pipeline (one worker, 500x375 JPEGs -> 299x299 tensors)", "",
                  "| pipeline | images/s per worker |", "|---|---|"]  # fmt: skip
        lines += [f"| {k} | {v['images_per_s_per_worker']:.0f} |" for k, v in result["data_pipeline"].items()]
        lines.append("")
    gpu_data = result.get("gpu_data_path")
    if gpu_data:
        lines += ["### GPU data path (nvjpeg decode + crop/resize/flip on the GPU vs one CPU thread)", "",
                  "| where | images/s |", "|---|---|",
                  f"| GPU, batches of {gpu_data['batch']} | {gpu_data['cuda']['images_per_s']:.0f} |",
                  f"| CPU, one thread | {gpu_data['cpu']['images_per_s']:.0f} |", ""]  # fmt: skip
    acc = result.get("accuracy", {})
    if "fp32" in acc:
        lines += [f"### Fast path and int8 on Fashion-MNIST ({acc['images']:,} test images, `{acc['checkpoint']}`)",
                  "", "| model | top-1 | change (points) | top-1 agreement with fp32 | images/s (batch 32) | on |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for name in ("fp32", "fast", "int8"):
            if name not in acc:  # int8 is for x86 CPUs: not in a GPU run
                continue
            a = acc[name]
            lines.append(f"| {name} | {a['top1']:.2%} | {a['top1_change_points']:+.2f} | "
                         f"{a['agreement_with_fp32']:.2%} | {a['images_per_s']:.0f} | "
                         f"{a.get('device', 'cpu')} |")  # fmt: skip
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.table")
    parser.add_argument("--results", default="benchmarks/results")
    parser.add_argument("--out", default="docs/performance.md")
    args = parser.parse_args(argv)
    files = sorted(Path(args.results).glob("*.json"))
    results = [(f, json.loads(f.read_text())) for f in files]
    results = [(f, r) for f, r in results if r.get("profile") != "smoke"]
    lines = ["# Performance", "",
             "Generated by `python -m benchmarks.table` from `benchmarks/results/*.json`; rerun the measurements with "
             "`python -m benchmarks.run --profile cpu --checkpoint runs/demo/best.pt` (CPU) or `benchmarks/gpu.sh` "
             "(GPU). Throughput is measured for this project's Inception-v3, torchvision's and timm's in one process, "
             "interleaved, with random weights at 299x299; ratios are to torchvision in the same setting. "
             "The fast path is `inception_v3.inference.fast_inference` (batch norm folded into the convolutions, "
             "channels_last, bf16 weights); int8 is `inception_v3.inference.quantize_int8` (torchao pt2e static "
             "post-training quantization with the X86 Inductor quantizer, compiled with Inductor freezing; results "
             "measured before 2026-11-28 used PyTorch's FX quantization, which it replaced).", ""]  # fmt: skip
    for f, r in results:
        lines += render(r, str(f))
    if not any(r.get("device") == "cuda" for _, r in results):
        lines += ["## GPU", "", "Not measured yet: no GPU has been available to this project. "
                  "`benchmarks/gpu.sh` is the prepared script (H100: AMP bf16 + channels_last + compile for all "
                  "three models, training FLOP utilization against the card's bf16 peak, and GPU JPEG decoding "
                  "with augmentation on the GPU).", ""]  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
