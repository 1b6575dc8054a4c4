"""The recipe's pieces against hand-computed values: RMSProp-TF, SGD, schedule, loss, clipping, EMA."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inception_v3.models.inception import InceptionOutputs
from inception_v3.training.ema import ModelEMA
from inception_v3.training.losses import inception_loss, smoothed_cross_entropy
from inception_v3.training.optim import RMSpropTF, build_optimizer, clip_gradients, lr_at, param_groups, scaled_lr
from inception_v3.training.settings import TrainConfig


def test_rmsprop_tf_matches_the_update_formula_step_by_step() -> None:
    p = nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = RMSpropTF([p], lr=0.1, decay=0.9, momentum=0.9, eps=1.0)
    grads = [torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.25]), torch.tensor([-1.0, 1.0])]
    ms, mom, value = [1.0, 1.0], [0.0, 0.0], [1.0, -2.0]
    for g in grads:
        p.grad = g.clone()
        opt.step()
        for i in range(2):
            gi = float(g[i])
            ms[i] = 0.9 * ms[i] + 0.1 * gi * gi  # square average starts at ones
            mom[i] = 0.9 * mom[i] + 0.1 * gi / math.sqrt(ms[i] + 1.0)  # epsilon inside the root
            value[i] -= mom[i]
        assert p.detach().tolist() == pytest.approx(value, rel=1e-6)


def test_rmsprop_tf_first_step_by_hand() -> None:
    p = nn.Parameter(torch.tensor([0.0]))
    p.grad = torch.tensor([3.0])
    RMSpropTF([p], lr=0.045, decay=0.9, momentum=0.9, eps=1.0).step()
    # ms = 0.9 + 0.1 * 9 = 1.8; step = 0.045 * 3 / sqrt(2.8)
    assert p.item() == pytest.approx(-0.045 * 3 / math.sqrt(2.8))


def test_rmsprop_tf_weight_decay_is_l2_on_the_gradient() -> None:
    p = nn.Parameter(torch.tensor([2.0]))
    p.grad = torch.tensor([0.0])
    RMSpropTF([p], lr=1.0, momentum=0.0, weight_decay=0.5).step()
    g = 0.5 * 2.0
    assert p.item() == pytest.approx(2.0 - g / math.sqrt(0.9 + 0.1 * g * g + 1.0))


def test_sgd_momentum_by_hand() -> None:
    model = nn.Linear(1, 1, bias=False)
    model.weight.data.fill_(1.0)
    opt = build_optimizer(model, TrainConfig(optimizer="sgd", weight_decay=0.0), lr=0.1)
    for _ in range(2):
        model.weight.grad = torch.tensor([[1.0]])
        opt.step()
    # v1 = 1, w = 0.9; v2 = 0.9 * 1 + 1 = 1.9, w = 0.9 - 0.19
    assert model.weight.item() == pytest.approx(0.71)


def test_weight_decay_skips_batch_norm_and_bias() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 2))
    decay, no_decay = param_groups(model, 4e-5)
    assert decay["weight_decay"] == 4e-5 and no_decay["weight_decay"] == 0.0
    assert {p.ndim for p in decay["params"]} == {2, 4} and {p.ndim for p in no_decay["params"]} == {1}
    assert [g["weight_decay"] for g in param_groups(model, 4e-5, decay_norm_and_bias=True)] == [4e-5]
    # fine-tuning: the new classifier ("3.") at the full rate, the pretrained layers at a tenth
    groups = param_groups(model, 4e-5, new=("3.",), pretrained_lr_scale=0.1)
    scales = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert scales[id(model[3].weight)] == scales[id(model[3].bias)] == 1.0
    assert scales[id(model[0].weight)] == scales[id(model[1].weight)] == 0.1
    with pytest.raises(ValueError, match="valid values"):  # the settings refuse an unknown optimizer
        build_optimizer(model, TrainConfig(optimizer="adam"), 0.1)


def test_lr_schedule_values() -> None:
    spe = 100  # steps per epoch
    assert lr_at(0, spe, 0.045) == 0.045
    assert lr_at(199, spe, 0.045) == 0.045  # still inside the first two epochs
    assert lr_at(200, spe, 0.045) == pytest.approx(0.045 * 0.94)
    assert lr_at(1000, spe, 0.045) == pytest.approx(0.045 * 0.94**5)
    assert lr_at(0, spe, 0.045, warmup_epochs=1) == pytest.approx(0.045 / 100)
    assert lr_at(99, spe, 0.045, warmup_epochs=1) == pytest.approx(0.045)
    assert scaled_lr(0.045, 1600) == 0.045 and scaled_lr(0.045, 32) == pytest.approx(0.045 / 50)


def test_smoothed_loss_is_the_papers_mixture() -> None:
    torch.manual_seed(0)
    logits, target, eps, k = torch.randn(4, 10), torch.tensor([1, 3, 5, 7]), 0.1, 10
    logp = F.log_softmax(logits, 1)
    h_q = -logp.gather(1, target[:, None]).squeeze(1).mean()  # H(q, p), q one-hot
    h_u = -(logp.sum(1) / k).mean()  # H(u, p), u uniform
    assert smoothed_cross_entropy(logits, target, eps).item() == pytest.approx(((1 - eps) * h_q + eps * h_u).item())
    out = InceptionOutputs(logits, logits * 2)
    expected = smoothed_cross_entropy(logits, target, eps) + 0.4 * smoothed_cross_entropy(logits * 2, target, eps)
    assert inception_loss(out, target, eps, 0.4).item() == pytest.approx(expected.item())
    assert inception_loss(InceptionOutputs(logits, None), target, eps, 0.4).item() == pytest.approx(
        smoothed_cross_entropy(logits, target, eps).item()
    )


def test_clipping_bounds_the_global_norm() -> None:
    params = [nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(4))]
    params[0].grad, params[1].grad = torch.full((3,), 3.0), torch.full((4,), 4.0)
    before = clip_gradients(params, 2.0)
    assert before == pytest.approx(math.sqrt(27 + 64))
    after = torch.cat([p.grad for p in params]).norm().item()
    assert after == pytest.approx(2.0, rel=1e-5)


def test_ema_update_with_and_without_warmup() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = ModelEMA(model, decay=0.9, warmup=False)
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(1.0)
        model[1].num_batches_tracked.fill_(5)
    ema.update(model)
    assert torch.allclose(ema.module[0].weight, start + 0.1)  # 0.9 * old + 0.1 * new
    assert torch.allclose(ema.module[1].running_mean, torch.full((2,), 0.1))  # BN buffers averaged too
    assert int(ema.module[1].num_batches_tracked) == 5
    warm = ModelEMA(model, decay=0.9999, warmup=True)
    assert warm.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    restored = ModelEMA(model, decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert restored.decay == 0.9 and restored.updates == 1
    assert torch.equal(restored.module[0].weight, ema.module[0].weight)


def test_rmsprop_tf_matches_timms_on_the_same_gradients() -> None:
    from timm.optim import RMSpropTF as TimmRMSpropTF

    torch.manual_seed(0)
    ours_model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    theirs_model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    theirs_model.load_state_dict(ours_model.state_dict())
    start = ours_model[0].weight.detach().clone()
    ours = RMSpropTF(ours_model.parameters(), lr=0.01, decay=0.9, momentum=0.9, eps=1.0, weight_decay=4e-5)
    theirs = TimmRMSpropTF(theirs_model.parameters(), lr=0.01, alpha=0.9, momentum=0.9, eps=1.0, weight_decay=4e-5)
    for _ in range(20):
        x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
        for model, opt in ((ours_model, ours), (theirs_model, theirs)):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    for a, b in zip(ours_model.parameters(), theirs_model.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
    assert (ours_model[0].weight - start).abs().max() > 1e-3  # the 20 steps really moved the weights
