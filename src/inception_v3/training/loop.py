"""The training loop (Sections 7-8 of the paper), readable top to bottom.

`train` sets a run up, then alternates `run_epoch` (one `train_step` per batch) and `end_of_epoch`
(validate, checkpoint) until the last step, and `finish` writes the final metrics and the report.

One process or many under `torchrun`: each replica takes batch_size images per step, so the global
batch is batch_size x world size; rank 0 alone writes. A run resumes exactly: the learning rate is a
function of the step, the data order and every image's augmentation are functions of (seed, epoch,
index), and the checkpoint holds the random generators' states.

A step reads one value from the device: a code that says whether any replica saw a non-finite loss
or gradient, or was asked to stop (one all-reduce under torchrun). Losses, accuracies and gradient
norms stay on the device and are read only on logging steps (every `LOG_EVERY`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm import tqdm

from ..data.datasets import build_datasets, split_sources
from ..data.image_io import BadSample
from ..data.transforms import Preprocessing
from ..errors import UserError
from ..evaluation.metrics import evaluate
from ..interop.loading import LoadReport
from ..interop.pretrained import load_pretrained
from ..models.config import get_config
from ..models.inception import CLASSIFIERS, Inception3, InceptionOutputs
from ..utils.devices import to_cpu
from ..utils.io import atomic_write_text
from ..utils.precision import Compute, resolve_amp
from ..utils.progress import progress_bar
from .checkpoints import CHECKPOINT_FORMAT, all_rng_states, save_checkpoint, set_rng_state, write_checkpoint
from .distributed import Dist, any_rank_flags, setup_distributed, sync_batchnorm
from .ema import ModelEMA
from .finetune import freeze_batchnorm, freeze_until
from .losses import inception_loss
from .metrics_log import EpochMeter
from .optim import build_optimizer, clip_gradients, lr_at, scaled_lr
from .precise_bn import recompute_bn_stats
from .report import write_report
from .run_dir import Logger, prepare_run_dir, removed_if_failed_early
from .sampling import SeededSamples, epoch_batches, make_loader, val_loader
from .settings import TrainConfig
from .signals import StopRequest

LOG_EVERY = 10
log = logging.getLogger(__name__)


@dataclass
class TrainData:
    train: Dataset  # SeededSamples: augmentation seeded per (seed, epoch, index)
    val: Dataset
    classes: list[str]
    channels: int  # of the model's input: 1 for gray data trained as gray (`gray` "in_chans"), else 3
    name: str  # where the training images come from
    global_batch: int
    steps_per_epoch: int
    total_steps: int


@dataclass
class Run:
    """Everything a run carries from step to step; `checkpoint_state` saves the part that resumes it."""

    cfg: TrainConfig
    d: Dist
    run_dir: Path
    data: TrainData
    model: Inception3
    ema: ModelEMA
    opt: torch.optim.Optimizer
    scaler: Any
    base_lr: float
    forward: nn.Module = field(init=False)
    compute: Compute = field(init=False)  # the device, mixed precision and memory format of every forward pass
    log: Logger = field(init=False)
    step: int = 0
    best: float = 0.0
    bad_images: list[str] = field(default_factory=list)
    skipped_nonfinite: int = 0
    started: float = field(default_factory=time.time)
    elapsed_before: float = 0.0
    resumes: int = 0
    meter: EpochMeter = field(init=False)
    start: Start = field(default_factory=lambda: Start())  # Start is defined below, with the setup code
    new_heads: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.compute = Compute(self.d.device, self.cfg.amp, self.cfg.channels_last)


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    finished: bool
    final: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- the loop
def train(cfg: TrainConfig, resume: str = "no", overwrite: bool = False) -> TrainResult:
    """Train the run described by `cfg`, or continue it (resume "yes": from its newest readable
    checkpoint; "auto": if it has one, else from the start); returns where it stopped and the metrics."""
    d = setup_distributed(cfg.device)
    cfg = dataclasses.replace(cfg, amp=resolve_amp(cfg.amp, d.device))  # config.json records what ran
    if cfg.amp == "fp16" and d.device.type != "cuda":
        raise UserError("`amp='fp16'` needs a CUDA device; use `amp='bf16'` or `amp='none'` on the CPU")
    rd = prepare_run_dir(cfg, resume, overwrite, d)
    with removed_if_failed_early(rd, d):
        torch.manual_seed(cfg.seed)
        if cfg.deterministic:  # cuBLAS is deterministic only with a fixed workspace (set before its first use)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        start = starting_point(cfg)
        run = build_run(cfg, d, rd.path, load_data(cfg, d, start), start)
        torch.manual_seed(cfg.seed + 1_000_003 * d.rank)  # dropout: each replica its own stream (the weights,
        # drawn above, are the same on every replica)
        if rd.checkpoint is not None:
            restore(run, *rd.checkpoint)
        run.forward = training_forward(run.model, cfg, d)
        run.log = Logger(rd.path, d.main)
        run.log.truncate_after(run.step)
        announce(run)
        metrics = None
        with StopRequest() as stop:
            while run.step < run.data.total_steps:
                if not run_epoch(run, stop):
                    return stopped(run, stop)
                metrics = end_of_epoch(run)
        return finish(run, metrics)


def run_epoch(run: Run, stop: StopRequest) -> bool:
    """Train from the current step to the end of its epoch (or of the run); False if stopped by a signal."""
    cfg, d, data = run.cfg, run.d, run.data
    epoch, first = divmod(run.step, data.steps_per_epoch)
    run.model.train()
    if cfg.freeze_bn:
        freeze_batchnorm(run.model)
    last = min(data.steps_per_epoch, data.total_steps - epoch * data.steps_per_epoch)
    batches = epoch_batches(len(data.train), cfg.batch_size, d, cfg.seed, epoch, first)[: last - first]  # type: ignore[arg-type]
    run.meter = EpochMeter(d.device)
    with progress_bar(
        total=last,
        initial=first,
        desc=f"epoch {epoch + 1}",
        unit="step",
        disable=not d.main,
        dynamic_ncols=True,
        leave=False,
    ) as bar:
        for x, y, bad in make_loader(data.train, batches, cfg.workers, d):
            note_bad_images(run, bad)
            stopping = train_step(run, x, y, stop.requested)
            run.step += 1
            bar.update(1)
            if run.step % LOG_EVERY == 0 or run.step == data.total_steps:
                log_step(run, bar)
            if stopping or (cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0):
                save(run)
            if stopping:
                return False
    return True


def train_step(run: Run, x: Tensor, y: Tensor, stop_requested: bool) -> bool:
    """One optimizer step on a batch; returns whether any replica was asked to stop."""
    cfg, d = run.cfg, run.d
    lr = lr_at(run.step, run.data.steps_per_epoch, run.base_lr, cfg.lr_decay, cfg.lr_decay_epochs, cfg.warmup_epochs)
    for group in run.opt.param_groups:
        group["lr"] = lr * group["lr_scale"]
    x, y = run.compute.input(x), y.to(d.device, non_blocking=True)
    with run.compute.autocast():
        logits, aux = run.forward(x)
        outputs = InceptionOutputs(logits.float(), None if aux is None else aux.float())  # the loss in fp32
        loss = inception_loss(outputs, y, cfg.label_smoothing, cfg.aux_weight)
    run.opt.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.opt)
    else:
        loss.backward()
    grad_norm = clip_gradients(run.model.parameters(), cfg.clip_grad_norm)
    flags = [~torch.isfinite(loss.detach()), ~torch.isfinite(grad_norm), torch.tensor(stop_requested, device=d.device)]
    bad_loss, bad_grads, stop = any_rank_flags(flags, d)  # the step's one read
    # fp16: gradients that overflow at the current loss scale are routine; the scaler lowers the scale
    # (update, on every step, after the unscale_ above) and the step is skipped without counting it
    overflow = run.scaler is not None and bad_grads and not bad_loss
    if (bad_loss or bad_grads) and not overflow:
        if cfg.on_nonfinite == "stop":
            raise UserError(
                f"non-finite loss ({float(loss.detach())}) or gradient norm ({float(grad_norm.detach())}) at step "
                f"{run.step + 1}; the weights and their running average were not updated. Lower `lr`, "
                f"use `amp='none'`, or pass `on_nonfinite='skip'`"
            )
        run.skipped_nonfinite += 1
    elif not overflow:
        run.opt.step()  # the gradients are finite and (fp16) already unscaled
        run.ema.update(run.model)
        run.meter.add(loss.detach(), logits.detach(), y, grad_norm.detach(), lr)
    if run.scaler is not None:
        run.scaler.update()
    return stop


def end_of_epoch(run: Run) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate the averaged and the raw weights, log, checkpoint (and best.pt when the average improved)."""
    avg, raw = validate(run)
    improved = avg["top1"] > run.best
    run.best = max(run.best, avg["top1"])
    train_loss, train_acc, rate = run.meter.epoch_summary(run.d.world)
    record = {
        "kind": "epoch",
        "step": run.step,
        "epoch": run.step / run.data.steps_per_epoch,
        "lr": run.meter.lr,
        "train_loss": train_loss,
        "train_acc": train_acc,
        **{f"val_{k}": raw[k] for k in ("top1", "top5", "loss")},
        **{f"ema_{k}": avg[k] for k in ("top1", "top5", "loss")},
        "img_s": rate,
        "elapsed_s": elapsed(run),
    }
    run.log.log(record)
    if run.d.main:
        log.info(
            f"epoch {record['epoch']:5.2f}  step {run.step}  loss {train_loss:.3f}  val top-1 {raw['top1']:.4f}  "
            f"averaged {avg['top1']:.4f}  ({rate:.0f} img/s)"
        )
    save(run, best=improved)
    return avg, raw


def finish(run: Run, metrics: tuple[dict[str, Any], dict[str, Any]] | None) -> TrainResult:
    """The final metrics (the last validation; evaluated again only when a finished run is resumed)."""
    avg, raw = metrics or validate(run)
    final = {
        "ema": avg,
        "raw": raw,
        "steps": run.step,
        "train_seconds": elapsed(run),
        "resumes": run.resumes,
        "skipped_bad_images": len(run.bad_images),
        "skipped_nonfinite_steps": run.skipped_nonfinite,
    }
    if run.d.main:
        atomic_write_text(run.run_dir / "final.json", json.dumps(final, indent=2))
        write_report(run.run_dir)
        log.info(
            f"done: top-1 {avg['top1']:.4f} (averaged weights), {raw['top1']:.4f} (raw); report in "
            f"{run.run_dir / 'report.md'}"
        )
    run.log.close()
    return TrainResult(run.run_dir, run.step, finished=True, final=final)


def stopped(run: Run, stop: StopRequest) -> TrainResult:
    if run.d.main:
        log.info(f"stopped by signal {stop.signal} at step {run.step}; checkpoint saved. Continue with `resume`")
    run.log.close()
    return TrainResult(run.run_dir, run.step, finished=False)


# ----------------------------------------------------------------------------- setting up
@dataclass
class Start:
    """What a run starts from: the recipe's preset from scratch, or pretrained weights (`init_from`)."""

    model: Inception3 | None = None
    report: LoadReport | None = None


def starting_point(cfg: TrainConfig) -> Start:
    return Start(*load_pretrained(cfg.init_from)) if cfg.init_from else Start()


def load_data(cfg: TrainConfig, d: Dist, start: Start) -> TrainData:
    """The data sets with the Inception preprocessing at the model's input size and in the input convention
    of its weights (channels, mean/std, interpolation), and the step counts."""
    train_src, val_src, names = split_sources(
        cfg.dataset, cfg.data_dir, cfg.train_split, cfg.val_split, (cfg.image_column, cfg.label_column)
    )
    if start.model is None:
        channels = 1 if train_src.channels == 1 and val_src.channels == 1 and cfg.gray == "in_chans" else 3
        size, interpolation = cfg.receptive_field or get_config(cfg.preset).receptive_field, "bilinear"
        mean, std = (0.5,) * channels, (0.5,) * channels
    else:
        mc = start.model.config
        channels, size, mean, std = mc.in_chans, mc.receptive_field, mc.mean, mc.std
        interpolation = start.report.preprocessing.get("interpolation", "bilinear") if start.report else "bilinear"
    prep = Preprocessing(
        size=size,
        crop_area=(cfg.crop_area_min, 1.0),
        color_distortion=cfg.color_distortion,
        eval_crop=cfg.eval_crop,
        mean=mean,
        std=std,
        interpolation=interpolation,
    )
    splits = build_datasets(train_src, val_src, names, prep, channels, cfg.train_subset, cfg.val_subset, cfg.classes)
    global_batch = cfg.batch_size * d.world
    steps_per_epoch = len(splits.train) // global_batch  # type: ignore[arg-type]
    if steps_per_epoch == 0:
        raise UserError(f"{len(splits.train)} training images are fewer than one global batch of {global_batch}")  # type: ignore[arg-type]
    total = max(1, round(cfg.epochs * steps_per_epoch))
    return TrainData(
        SeededSamples(splits.train, cfg.seed),
        splits.val,
        splits.classes,
        channels,
        train_src.name,
        global_batch,
        steps_per_epoch,
        total,
    )


def build_model(cfg: TrainConfig, num_classes: int, channels: int) -> Inception3:
    """The recipe's model for `num_classes` classes and `channels` input channels (mean/std 0.5: [-1, 1])."""
    fields = ("receptive_field", "width_multiplier", "min_depth", "drop_rate", "bn_momentum")
    overrides = {k: getattr(cfg, k) for k in fields if getattr(cfg, k) is not None}
    norm = {"mean": (0.5,) * channels, "std": (0.5,) * channels}
    return Inception3(get_config(cfg.preset, num_classes=num_classes, in_chans=channels, **norm, **overrides))


def build_run(cfg: TrainConfig, d: Dist, run_dir: Path, data: TrainData, start: Start) -> Run:
    """Model (the preset, or the pretrained one with new classifiers when the classes differ), running
    average, optimizer (weight decay off BN and biases; pretrained layers at `pretrained_lr_scale`) and
    gradient scaler."""
    new: tuple[str, ...] = ()
    if start.model is None:
        model = build_model(cfg, len(data.classes), data.channels)
    else:
        model = start.model
        if start.report is None or start.report.classes != data.classes:
            model.reset_classifier(len(data.classes))
            new = tuple(f"{name}." for name in CLASSIFIERS)
        if cfg.freeze_until:
            freeze_until(model, cfg.freeze_until)
    if cfg.aux_weight == 0 and model.AuxLogits is not None:  # an unused head: not trained (and not reduced by DDP)
        model.AuxLogits.requires_grad_(False)
    model = model.to(d.device)
    if cfg.sync_bn and d.world > 1:
        sync_batchnorm(model, d.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = ModelEMA(model, cfg.ema_decay, cfg.ema_warmup)
    base_lr = scaled_lr(cfg.lr, data.global_batch) if cfg.scale_lr else cfg.lr
    opt = build_optimizer(model, cfg, base_lr, new, cfg.pretrained_lr_scale if start.model is not None else 1.0)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
    return Run(cfg, d, run_dir, data, model, ema, opt, scaler, base_lr, start=start, new_heads=new)


class TrainForward(nn.Module):
    """forward = the training computation (with the aux head only when its loss counts), so DDP and
    torch.compile see exactly the parameters that get gradients."""

    def __init__(self, model: Inception3, aux: bool) -> None:
        super().__init__()
        self.model, self.aux = model, aux

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        if not self.aux:
            return self.model(x), None
        out = self.model.forward_with_aux(x)
        return out.logits, out.aux_logits


def training_forward(model: Inception3, cfg: TrainConfig, d: Dist) -> nn.Module:
    forward: nn.Module = TrainForward(model, aux=cfg.aux_weight > 0)
    if d.world > 1:
        ids = [d.local_rank] if d.device.type == "cuda" else None
        forward = nn.parallel.DistributedDataParallel(forward, device_ids=ids)
    return torch.compile(forward) if cfg.compile else forward  # type: ignore[return-value]


def announce(run: Run) -> None:
    """config.json (the resolved settings) and one line about what is being trained."""
    cfg, d, data = run.cfg, run.d, run.data
    if not d.main:
        return
    init = None
    if (r := run.start.report) is not None:
        init = {"weights": r.weights, "file": r.file, "loaded": r.summary(), "new_heads": list(run.new_heads)}
    config = {
        "train": cfg.to_dict(),
        "model": run.model.config.to_dict(),
        "classes": data.classes,
        "world_size": d.world,
        "global_batch": data.global_batch,
        "steps_per_epoch": data.steps_per_epoch,
        "total_steps": data.total_steps,
        "base_lr": run.base_lr,
        "init_from": init,
    }
    atomic_write_text(run.run_dir / "config.json", json.dumps(config, indent=2))
    params = sum(p.numel() for p in run.model.parameters())
    log.info(
        f"training {cfg.preset} ({params:,} params) on {data.name}: {len(data.train):,} images, "  # type: ignore[arg-type]
        f"{data.total_steps:,} steps of {data.global_batch} on {d.world} x {d.device.type}, writing {run.run_dir}"
    )


# ----------------------------------------------------------------------------- during the loop
def note_bad_images(run: Run, bad: list[BadSample]) -> None:
    """Unreadable images: stop naming the first, or (with `skip_bad_images`) count each file once."""
    if bad and not run.cfg.skip_bad_images:
        raise UserError(f"cannot decode image {bad[0].path}: fix or remove it, or pass `skip_bad_images=True`")
    for b in bad:
        if b.path not in run.bad_images:
            run.bad_images.append(b.path)


def log_step(run: Run, bar: tqdm) -> None:
    """The logging step's host reads: the last loss, the epoch's running accuracy, the gradient norm."""
    record = {
        "kind": "step",
        "step": run.step,
        "epoch": run.step / run.data.steps_per_epoch,
        **run.meter.step_summary(run.d.world),
    }
    run.log.log(record)
    bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['train_acc']:.3f}", img_s=f"{record['img_s']:.0f}")


def validate(run: Run) -> tuple[dict[str, Any], dict[str, Any]]:
    """Top-1/top-5, loss and confusion matrix of the averaged and the raw weights on the validation set,
    each with batch-norm statistics recomputed on `precise_bn_images` training images of this epoch."""
    cfg, d, data = run.cfg, run.d, run.data
    if cfg.precise_bn_images and not cfg.freeze_bn:  # frozen statistics are the pretrained ones
        epoch = (run.step - 1) // data.steps_per_epoch
        batches = epoch_batches(len(data.train), cfg.batch_size, d, cfg.seed, epoch, 0)  # type: ignore[arg-type]
        batches = batches[: max(1, -(-cfg.precise_bn_images // data.global_batch))]
        for net in (run.ema.module, run.model):
            recompute_bn_stats(net, make_loader(data.train, batches, cfg.workers, d), run.compute)
    results = []
    for net, label in ((run.ema.module, "averaged"), (run.model, "raw")):
        loader = val_loader(data.val, 2 * cfg.batch_size, cfg.workers, d)
        results.append(evaluate(net, loader, run.compute, f"val ({label})" if d.main else None, len(data.classes)))
    return results[0], results[1]


def checkpoint_state(run: Run, rng: list[dict[str, Any]]) -> dict[str, Any]:
    """What resumes the run (`rng`: every replica's generators, from `all_rng_states`)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model_config": run.model.config.to_dict(),
        "train_config": run.cfg.to_dict(),
        "classes": run.data.classes,
        "model": run.model.state_dict(),
        "ema": run.ema.state_dict(),
        "optimizer": run.opt.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else {},
        "rng": rng,
        "step": run.step,
        "best_top1": run.best,
        "bad_images": list(run.bad_images),
        "skipped_nonfinite": run.skipped_nonfinite,
        "elapsed_s": elapsed(run),
        "resumes": run.resumes,
    }


def elapsed(run: Run) -> float:
    """Wall-clock seconds of training kept in this run, summed over its launches (work redone after a restart counts
    once: the time between the last checkpoint and a kill is not included)."""
    return run.elapsed_before + time.time() - run.started


def save(run: Run, best: bool = False) -> None:
    """A step checkpoint (rank 0), and best.pt when asked. A failed write (a full disk) stops the run with
    one line; the previous checkpoints are untouched (writes are atomic). Every rank calls it (the
    generators' states are gathered from all); tensors are saved as CPU tensors, readable anywhere."""
    rng = all_rng_states()
    if not run.d.main:
        return
    state = to_cpu(checkpoint_state(run, rng))
    try:
        write_checkpoint(run.run_dir, state, run.cfg.keep_last)
        if best:
            save_checkpoint(state, run.run_dir / "best.pt")
    except OSError as exc:
        raise UserError(
            f"cannot write a checkpoint of step {run.step} in {run.run_dir}: {exc.strerror or exc}; the previous "
            f"checkpoint is intact: free space and continue with `resume='auto'`"
        ) from None


def restore(run: Run, path: Path, state: dict[str, Any]) -> None:
    """Continue from a checkpoint of this run (`state`, read from `path`)."""
    if run.d.main:
        log.info(f"resuming {run.run_dir} from {path.name} (step {state['step']})")
    if state.get("classes") != run.data.classes:
        raise UserError(
            f"the checkpoint in {run.run_dir} has {len(state.get('classes', []))} classes but the data "
            f"has {len(run.data.classes)}; resume with the data it was trained on"
        )
    run.model.load_state_dict(state["model"])
    run.ema.load_state_dict(state["ema"])
    try:
        run.opt.load_state_dict(state["optimizer"])
    except ValueError:  # parameter groups of another layout (another version, or other frozen layers)
        raise UserError(
            f"the optimizer state in {path} has other parameter groups than this run builds (written by another "
            f"version, or with other `freeze_until` / `aux_weight` settings); resume with the settings it was "
            f"written with, or start again with `overwrite=True`"
        ) from None
    if run.scaler is not None and state["scaler"]:
        run.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"], run.d.rank)
    run.step, run.best = state["step"], state["best_top1"]
    run.bad_images = list(state.get("bad_images", []))
    run.skipped_nonfinite = int(state.get("skipped_nonfinite", 0))
    run.elapsed_before, run.started = float(state.get("elapsed_s", 0.0)), time.time()
    run.resumes = int(state.get("resumes", 0)) + 1
