"""Optimizers and the learning-rate schedule of the paper's recipe (Section 8).

RMSProp is TensorFlow's: epsilon inside the square root, the square average starting at ones and
the learning rate folded into the momentum buffer. PyTorch's `torch.optim.RMSprop` puts epsilon
outside the root, which with the paper's epsilon = 1.0 is a very different optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from .settings import TrainConfig

PAPER_GLOBAL_BATCH = 32 * 50  # 50 replicas x batch 32


class RMSpropTF(torch.optim.Optimizer):
    """RMSProp as TensorFlow defines it.

    ms  <- decay * ms + (1 - decay) * g^2          (ms starts at 1)
    mom <- momentum * mom + lr * g / sqrt(ms + eps)
    p   <- p - mom
    with g = grad + weight_decay * p (L2 regularization, as TF-slim adds it to the loss).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.045,
        decay: float = 0.9,
        momentum: float = 0.9,
        eps: float = 1.0,
        weight_decay: float = 0.0,
    ) -> None:
        if lr < 0 or not 0 <= decay < 1 or momentum < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"invalid RMSpropTF settings: lr={lr} decay={decay} momentum={momentum} eps={eps}")
        super().__init__(
            params, {"lr": lr, "decay": decay, "momentum": momentum, "eps": eps, "weight_decay": weight_decay}
        )

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if not self.state[p]:
                    self.state[p].update(square_avg=torch.ones_like(p), momentum_buffer=torch.zeros_like(p))
            grads: list[Tensor] | tuple[Tensor, ...] = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            square_avg = [self.state[p]["square_avg"] for p in params]
            buf = [self.state[p]["momentum_buffer"] for p in params]
            torch._foreach_mul_(square_avg, group["decay"])
            torch._foreach_addcmul_(square_avg, grads, grads, value=1 - group["decay"])
            denom = torch._foreach_add(square_avg, group["eps"])
            torch._foreach_sqrt_(denom)
            torch._foreach_mul_(buf, group["momentum"])
            torch._foreach_addcdiv_(buf, grads, denom, value=group["lr"])
            torch._foreach_sub_(params, buf)
        return loss


def param_groups(
    model: nn.Module,
    weight_decay: float,
    decay_norm_and_bias: bool = False,
    new: tuple[str, ...] = (),
    pretrained_lr_scale: float = 1.0,
) -> list[dict[str, Any]]:
    """Trainable parameters split by weight decay (none on BN parameters and biases unless asked) and, when
    fine-tuning, by learning rate: `lr_scale` is `pretrained_lr_scale` except under the `new` prefixes
    (from scratch, leave the scale at 1: every layer is new)."""
    groups: dict[tuple[bool, bool], list[Tensor]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault((p.ndim > 1 or decay_norm_and_bias, name.startswith(new)), []).append(p)
    return [
        {
            "params": params,
            "weight_decay": weight_decay if decay else 0.0,
            "lr_scale": 1.0 if is_new else pretrained_lr_scale,
        }
        for (decay, is_new), params in sorted(groups.items(), reverse=True)
    ]


def build_optimizer(
    model: nn.Module, cfg: TrainConfig, lr: float, new: tuple[str, ...] = (), pretrained_lr_scale: float = 1.0
) -> torch.optim.Optimizer:
    """The run's `optimizer` at `lr`: `rmsprop` (TF semantics, the paper's best models) or `sgd` (momentum, its
    earlier runs), with its weight decay, momentum and RMSProp settings; `new` layers at the full rate, the
    others at `pretrained_lr_scale` of it."""
    groups = param_groups(model, cfg.weight_decay, cfg.decay_norm_and_bias, new, pretrained_lr_scale)
    if cfg.optimizer == "rmsprop":
        return RMSpropTF(groups, lr=lr, decay=cfg.rmsprop_decay, momentum=cfg.momentum, eps=cfg.rmsprop_eps)
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)


def lr_at(
    step: int, per_epoch: int, base_lr: float, decay: float = 0.94, decay_epochs: float = 2.0, warmup_epochs: float = 0
) -> float:
    """Learning rate at optimizer step `step` (`per_epoch` steps an epoch): linear warmup, then
    base_lr * decay ** floor(epoch / decay_epochs). A pure function of the step, so a resumed run follows the
    same schedule exactly."""
    epoch = step / per_epoch
    if warmup_epochs > 0 and epoch < warmup_epochs:
        return base_lr * (step + 1) / math.ceil(warmup_epochs * per_epoch)
    return base_lr * decay ** math.floor(epoch / decay_epochs)


def scaled_lr(base_lr: float, global_batch: int) -> float:
    """Linear scaling rule relative to the paper's global batch of 50 x 32 = 1600."""
    return base_lr * global_batch / PAPER_GLOBAL_BATCH


def clip_gradients(parameters: Iterable[Tensor], max_norm: float) -> Tensor:
    """Clip the global gradient norm (the paper's threshold is 2.0); returns the norm before clipping,
    as a tensor (reading it would wait for the device)."""
    return torch.nn.utils.clip_grad_norm_(list(parameters), max_norm)
