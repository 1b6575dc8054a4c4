"""The training loop (Sections 7-8 of the paper), readable top to bottom.

One process or many under `torchrun`: each replica takes batch_size images per step, so the global
batch is batch_size x world size. Rank 0 alone writes logs and checkpoints. A run resumes exactly:
the learning rate is a function of the step, the data order and every image's augmentation are
functions of (seed, epoch, index), and the checkpoint holds the random generators' states.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .checkpoint import atomic_write, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import get_config
from .data import Preprocessing, build_datasets, collate
from .distributed import Dist, any_rank, setup_distributed, sync_batchnorm
from .ema import ModelEMA
from .errors import UserError
from .evaluate import autocast, evaluate
from .losses import inception_loss
from .model import Inception3, InceptionOutputs
from .optim import build_optimizer, clip_gradients, lr_at, scaled_lr
from .precise_bn import recompute_bn_stats
from .recipes import TrainConfig
from .report import write_report

CHECKPOINT_FORMAT = "inception-v3/checkpoint/1"
RUN_FILES = ("config.json", "metrics.jsonl", "report.md", "checkpoints", "best.pt", "final.json", "plots", "tb")


# ----------------------------------------------------------------------------- data order and augmentation
class SeededSamples(Dataset):
    """Wraps a dataset so each sample's random augmentation depends only on (seed, key).

    Keys are epoch * len + index: the same image gets the same crop in a resumed run, under any
    number of workers or replicas.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed, self.n = dataset, seed, len(dataset)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: int) -> Any:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + key)
            return self.dataset[key % self.n]


def epoch_batches(n: int, batch: int, d: Dist, seed: int, epoch: int, start: int) -> list[list[int]]:
    """This replica's batches (as sample keys) for `epoch`, from batch number `start` on.

    One permutation per (seed, epoch); global batch k is permutation[k*B : (k+1)*B] with
    B = batch x world, and replica r takes every world-th sample of it.
    """
    g = torch.Generator().manual_seed(seed * 7919 + epoch)
    perm = (torch.randperm(n, generator=g) + epoch * n).tolist()
    global_batch = batch * d.world
    out = []
    for k in range(start, n // global_batch):
        chunk = perm[k * global_batch : (k + 1) * global_batch]
        out.append(chunk[d.rank :: d.world])
    return out


def make_loader(dataset: Dataset, batches: Any, cfg: TrainConfig, d: Dist) -> DataLoader:
    """A loader over precomputed batches. Its own generator keeps it from drawing on the global RNG
    (which dropout uses and checkpoints restore)."""
    return DataLoader(dataset, batch_sampler=batches, num_workers=cfg.workers, collate_fn=collate,
                      pin_memory=d.device.type == "cuda", generator=torch.Generator())  # fmt: skip


def val_loader(dataset: Dataset, cfg: TrainConfig, d: Dist) -> DataLoader:
    shard = list(range(d.rank, len(dataset), d.world))  # type: ignore[arg-type]
    batches = [shard[i : i + 2 * cfg.batch_size] for i in range(0, len(shard), 2 * cfg.batch_size)]
    return make_loader(dataset, batches, cfg, d)


# ----------------------------------------------------------------------------- run directory
def prepare_run_dir(cfg: TrainConfig, resume: bool, overwrite: bool, d: Dist) -> Path:
    """runs/NAME: refuse to touch another run's files unless --resume or --overwrite."""
    run_dir = Path(cfg.out_dir) / cfg.name
    existing = [f for f in RUN_FILES if (run_dir / f).exists()]
    if resume:
        if not list((run_dir / "checkpoints").glob("step-*.pt")):
            raise UserError(f"nothing to resume in {run_dir}: it has no checkpoints; drop --resume to start a new run")
    elif existing and not overwrite:
        raise UserError(f"{run_dir} already holds a run ({', '.join(existing)}); "
                        f"pass --resume to continue it or --overwrite to replace it")  # fmt: skip
    elif existing and d.main:
        for f in existing:
            path = run_dir / f
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    if d.world > 1:
        dist.barrier()
    return run_dir


class Logger:
    """metrics.jsonl (+ TensorBoard when installed), written by rank 0 only."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.enabled, self.path, self.tb = enabled, run_dir / "metrics.jsonl", None
        if enabled:
            run_dir.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"))
            except ImportError:
                self.tb = None

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(f"{record['kind']}/{k}", v, record["step"])

    def truncate_after(self, step: int) -> None:
        """Drop records past `step` (written after the checkpoint a resumed run starts from)."""
        if self.enabled and self.path.exists():
            keep = [line for line in self.path.read_text().splitlines() if json.loads(line)["step"] <= step]
            atomic_write(self.path, lambda p: Path(p).write_text("".join(line + "\n" for line in keep)))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# ----------------------------------------------------------------------------- model
class TrainForward(nn.Module):
    """forward = forward_with_aux, so DDP and torch.compile see the training computation."""

    def __init__(self, model: Inception3) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        out = self.model.forward_with_aux(x)
        return out.logits, out.aux_logits


def build_model(cfg: TrainConfig, num_classes: int, channels: int) -> Inception3:
    """The recipe's model for `num_classes` classes and `channels` input channels (mean/std 0.5: [-1, 1])."""
    fields = ("receptive_field", "width_multiplier", "min_depth", "drop_rate", "bn_momentum")
    overrides = {k: getattr(cfg, k) for k in fields}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return Inception3(get_config(cfg.preset, num_classes=num_classes, in_chans=channels,
                                 mean=(0.5,) * channels, std=(0.5,) * channels, **overrides))  # fmt: skip


def data_channels(cfg: TrainConfig) -> int:
    return 1 if cfg.dataset == "fashion-mnist" and cfg.gray == "in_chans" else 3


# ----------------------------------------------------------------------------- checkpoints
def checkpoint_state(model: Inception3, ema: ModelEMA, opt: torch.optim.Optimizer, scaler: Any, cfg: TrainConfig,
                     classes: list[str], step: int, best: float) -> dict[str, Any]:  # fmt: skip
    return {
        "format": CHECKPOINT_FORMAT,
        "model_config": model.config.to_dict(),
        "train_config": cfg.to_dict(),
        "classes": classes,
        "model": model.state_dict(),
        "ema": ema.state_dict(),
        "optimizer": opt.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "rng": rng_state(),
        "step": step,
        "best_top1": best,
    }


def write_checkpoint(run_dir: Path, state: dict[str, Any], keep_last: int) -> Path:
    """checkpoints/step-NNNNNNNN.pt, keeping the newest `keep_last`."""
    path = run_dir / "checkpoints" / f"step-{state['step']:08d}.pt"
    save_checkpoint(state, path)
    for old in sorted((run_dir / "checkpoints").glob("step-*.pt"))[:-keep_last]:
        old.unlink()
    return path


def latest_checkpoint(run_dir: Path) -> Path:
    return sorted((run_dir / "checkpoints").glob("step-*.pt"))[-1]


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop finishes its step, checkpoints and stops."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signal = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    finished: bool
    final: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- the loop
def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Train (or resume) the run described by `cfg`; returns where it stopped and the final metrics."""
    d = setup_distributed(cfg.device)
    if cfg.amp == "fp16" and d.device.type != "cuda":
        raise UserError("--amp fp16 needs a CUDA device; use --amp bf16 or none on the CPU")
    run_dir = prepare_run_dir(cfg, resume, overwrite, d)
    torch.manual_seed(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)

    # Data: Inception preprocessing at the model's own input size.
    channels = data_channels(cfg)
    size = cfg.receptive_field or get_config(cfg.preset).receptive_field
    prep = Preprocessing(size=size, crop_area=(cfg.crop_area_min, 1.0), color_distortion=cfg.color_distortion,
                         eval_crop=cfg.eval_crop, mean=(0.5,) * channels, std=(0.5,) * channels)  # fmt: skip
    splits = build_datasets(cfg.dataset, cfg.data_dir, prep, channels, cfg.skip_bad_images, cfg.train_subset,
                            cfg.val_subset)  # fmt: skip
    train_set = SeededSamples(splits.train, cfg.seed)
    global_batch = cfg.batch_size * d.world
    steps_per_epoch = len(train_set) // global_batch
    if steps_per_epoch == 0:
        raise UserError(f"{len(train_set)} training images are fewer than one global batch of {global_batch}")
    total_steps = max(1, round(cfg.epochs * steps_per_epoch))

    # Model, running average, optimizer (weight decay off BN and biases), mixed precision.
    model = build_model(cfg, len(splits.classes), channels).to(d.device)
    if cfg.sync_bn and d.world > 1:
        sync_batchnorm(model, d.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = ModelEMA(model, cfg.ema_decay, cfg.ema_warmup)
    base_lr = scaled_lr(cfg.lr, global_batch) if cfg.scale_lr else cfg.lr
    opt = build_optimizer(model, cfg.optimizer, base_lr, cfg.weight_decay, cfg.momentum, cfg.rmsprop_decay,
                          cfg.rmsprop_eps, cfg.decay_norm_and_bias)  # fmt: skip
    scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
    step, best = 0, 0.0
    if resume:
        state = load_checkpoint(latest_checkpoint(run_dir), map_location=d.device)
        if state.get("classes") != splits.classes:
            raise UserError(f"the checkpoint in {run_dir} has {len(state.get('classes', []))} classes but the data "
                            f"has {len(splits.classes)}; resume with the data it was trained on")  # fmt: skip
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        if scaler is not None and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        step, best = state["step"], state["best_top1"]
    forward = TrainForward(model)
    if d.world > 1:
        forward = nn.parallel.DistributedDataParallel(forward, device_ids=[d.local_rank] if d.device.type == "cuda"
                                                      else None)  # fmt: skip
    if cfg.compile:
        forward = torch.compile(forward)

    log = Logger(run_dir, d.main)
    log.truncate_after(step)
    if d.main:
        atomic_write(run_dir / "config.json", lambda p: Path(p).write_text(json.dumps(
            {"train": cfg.to_dict(), "model": model.config.to_dict(), "classes": splits.classes,
             "world_size": d.world, "global_batch": global_batch, "steps_per_epoch": steps_per_epoch,
             "total_steps": total_steps, "base_lr": base_lr}, indent=2)))  # fmt: skip
        print(f"training {cfg.preset} ({sum(p.numel() for p in model.parameters()):,} params) on {cfg.dataset}: "
              f"{len(train_set):,} images, {total_steps:,} steps of {global_batch} on {d.world} x {d.device.type}, "
              f"writing {run_dir}", flush=True)  # fmt: skip

    started, skipped_bad, skipped_nonfinite = time.time(), 0, 0
    avg: dict[str, Any] | None = None
    raw: dict[str, Any] | None = None
    with StopRequest() as stop:
        while step < total_steps:
            epoch = step // steps_per_epoch
            batches = epoch_batches(len(train_set), cfg.batch_size, d, cfg.seed, epoch, step % steps_per_epoch)
            end = min(steps_per_epoch, step - epoch * steps_per_epoch + len(batches), total_steps - epoch *
                      steps_per_epoch)  # fmt: skip
            bar = tqdm(total=end, initial=step % steps_per_epoch, desc=f"epoch {epoch + 1}", unit="step",
                       disable=not d.main, dynamic_ncols=True, leave=False)  # fmt: skip
            seen = correct = 0
            loss_sum, epoch_start = 0.0, time.time()
            for x, y, n_bad in make_loader(train_set, batches, cfg, d):
                skipped_bad += n_bad
                lr = lr_at(step, steps_per_epoch, base_lr, cfg.lr_decay, cfg.lr_decay_epochs, cfg.warmup_epochs)
                for group in opt.param_groups:
                    group["lr"] = lr
                x, y = x.to(d.device, non_blocking=True), y.to(d.device, non_blocking=True)
                if cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)

                with autocast(d.device, cfg.amp):
                    logits, aux = forward(x)
                    loss = inception_loss_from(logits, aux, y, cfg)
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(opt)
                else:
                    loss.backward()
                grad_norm = clip_gradients(model.parameters(), cfg.clip_grad_norm)
                # fp16's scaler skips steps with inf gradients itself; otherwise both must be finite.
                finite = math.isfinite(float(loss.detach())) and (scaler is not None or math.isfinite(grad_norm))
                if any_rank(not finite, d):
                    if cfg.on_nonfinite == "stop":
                        raise UserError(f"non-finite loss ({float(loss.detach())}) or gradient norm ({grad_norm}) at "
                                        f"step {step + 1}; the weights and their running average were not updated. "
                                        f"Lower --lr, use --amp none, or pass --on-nonfinite skip")  # fmt: skip
                    skipped_nonfinite += 1
                else:
                    if scaler is not None:
                        scaler.step(opt)
                        scaler.update()
                    else:
                        opt.step()
                    ema.update(model)
                    seen += len(y)
                    correct += int((logits.argmax(1) == y).sum())
                    loss_sum += float(loss.detach()) * len(y)
                step += 1

                rate = seen * d.world / max(time.time() - epoch_start, 1e-9)
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / max(seen, 1):.3f}", acc=f"{correct / max(seen, 1):.3f}",
                                img_s=f"{rate:.0f}")  # fmt: skip
                if step % 10 == 0 or step == total_steps:
                    log.log({"kind": "step", "step": step, "epoch": step / steps_per_epoch, "lr": lr,
                             "loss": float(loss.detach()), "train_acc": correct / max(seen, 1), "grad_norm": grad_norm,
                             "img_s": rate})  # fmt: skip
                stopping = any_rank(stop.signal is not None, d)
                if d.main and (stopping or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0)):
                    write_checkpoint(run_dir, checkpoint_state(model, ema, opt, scaler, cfg, splits.classes, step,
                                                               best), cfg.keep_last)  # fmt: skip
                if stopping:
                    bar.close()
                    if d.main:
                        print(f"stopped by signal {stop.signal} at step {step}; checkpoint saved. Continue with "
                              f"--resume", flush=True)  # fmt: skip
                    log.close()
                    return TrainResult(run_dir, step, finished=False)
                if step >= total_steps or step % steps_per_epoch == 0:
                    break
            bar.close()

            # End of an epoch (and of the run): validate the averaged and the raw weights.
            avg, raw = validate(model, ema, train_set, splits.val, cfg, d, epoch)
            improved, best = avg["top1"] > best, max(best, avg["top1"])
            record = {"kind": "epoch", "step": step, "epoch": step / steps_per_epoch, "lr": lr,
                      "train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
                      "val_top1": raw["top1"], "val_top5": raw["top5"], "val_loss": raw["loss"],
                      "ema_top1": avg["top1"], "ema_top5": avg["top5"], "ema_loss": avg["loss"],
                      "img_s": seen * d.world / max(time.time() - epoch_start, 1e-9),
                      "elapsed_s": time.time() - started}  # fmt: skip
            log.log(record)
            if d.main:
                print(f"epoch {step / steps_per_epoch:5.2f}  step {step}  loss {record['train_loss']:.3f}  "
                      f"val top-1 {raw['top1']:.4f}  averaged {avg['top1']:.4f}  "
                      f"({record['img_s']:.0f} img/s)", flush=True)  # fmt: skip
                state = checkpoint_state(model, ema, opt, scaler, cfg, splits.classes, step, best)
                write_checkpoint(run_dir, state, cfg.keep_last)
                if improved:
                    save_checkpoint(state, run_dir / "best.pt")

    # The run is complete: the last validation is the final result (evaluated again only when a
    # finished run is resumed).
    if avg is None or raw is None:
        avg, raw = validate(model, ema, train_set, splits.val, cfg, d, (step - 1) // steps_per_epoch)
    final = {
        "ema": avg,
        "raw": raw,
        "steps": step,
        "train_seconds": time.time() - started,
        "skipped_bad_images": skipped_bad,
        "skipped_nonfinite_steps": skipped_nonfinite,
    }
    if d.main:
        atomic_write(run_dir / "final.json", lambda p: Path(p).write_text(json.dumps(final, indent=2)))
        write_report(run_dir)
        print(f"done: top-1 {final['ema']['top1']:.4f} (averaged weights), {final['raw']['top1']:.4f} (raw); "
              f"report in {run_dir / 'report.md'}", flush=True)  # fmt: skip
    log.close()
    return TrainResult(run_dir, step, finished=True, final=final)


def validate(model: Inception3, ema: ModelEMA, train_set: Dataset, val_set: Dataset, cfg: TrainConfig, d: Dist,
             epoch: int) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Top-1/top-5, loss and confusion matrix of the averaged and the raw weights on the validation set,
    each with batch-norm statistics recomputed on `precise_bn_images` images of this epoch."""
    if cfg.precise_bn_images:
        n = len(train_set)  # type: ignore[arg-type]
        batches = epoch_batches(n, cfg.batch_size, d, cfg.seed, epoch, 0)
        batches = batches[: max(1, -(-cfg.precise_bn_images // (cfg.batch_size * d.world)))]
        for net in (ema.module, model):
            recompute_bn_stats(net, make_loader(train_set, batches, cfg, d), d.device, cfg.amp, cfg.channels_last)
    k = model.config.num_classes
    show = "val (averaged)" if d.main else None
    avg = evaluate(ema.module, val_loader(val_set, cfg, d), d.device, cfg.amp, cfg.channels_last, show, k)
    show = "val (raw)" if d.main else None
    raw = evaluate(model, val_loader(val_set, cfg, d), d.device, cfg.amp, cfg.channels_last, show, k)
    return avg, raw


def inception_loss_from(logits: Tensor, aux: Tensor | None, y: Tensor, cfg: TrainConfig) -> Tensor:
    """The recipe's loss in fp32, whatever precision the forward pass ran in."""
    out = InceptionOutputs(logits.float(), None if aux is None else aux.float())
    return inception_loss(out, y, cfg.label_smoothing, cfg.aux_weight)
