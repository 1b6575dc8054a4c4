"""The model family: exact architecture, one output API, variants, init and bad input."""

import pytest
import torch
import torchvision
from torch import nn

from inception_v3 import PRESETS, InceptionConfig, InceptionOutputs, create_model, get_config, inception_v3
from inception_v3.models.inception import grid_sizes, min_input_size
from inception_v3.models.layers import ConvBN

PARAMS = {
    "inception_v3": 27_161_264,
    "inception_v3_151": 27_161_264,
    "inception_v3_79": 27_161_264,
    "inception_v2": 27_141_264,
    "inception_v2_factorized_7x7": 27_160_496,
    "inception_v3_no_aux": 23_834_568,
    "inception_v3_linear_factorized": 27_161_264,
    "inception_v3_fid": 23_850_960,
}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_released_parameter_counts() -> None:
    model = inception_v3()
    assert n_params(model) == 27_161_264
    assert n_params(model) - n_params(model.AuxLogits) == 23_834_568


def test_every_preset_is_tested() -> None:
    assert set(PARAMS) == set(PRESETS)


@pytest.mark.parametrize("preset", sorted(PARAMS))
def test_preset_shapes_at_nominal_and_minimum_size(preset: str) -> None:
    model = create_model(preset)
    assert n_params(model) == PARAMS[preset]
    nominal = model.config.receptive_field
    classes = model.config.num_classes
    for size in (nominal, model.min_size):
        x = torch.randn(2, 3, size, size)
        for training in (True, False):
            model.train(training)
            with torch.no_grad():
                logits = model(x)
            assert isinstance(logits, torch.Tensor) and logits.shape == (2, classes)
    features = model.eval().forward_features(torch.randn(1, 3, nominal, nominal))
    assert features.shape == (1, 2048, 8, 8)
    assert model.forward_head(features, pre_logits=True).shape == (1, 2048)
    model.train()
    out = model.forward_with_aux(torch.randn(2, 3, model.min_size_aux, model.min_size_aux))
    assert isinstance(out, InceptionOutputs) and out.logits.shape == (2, classes)
    if model.config.aux_logits:
        assert out.aux_logits is not None and out.aux_logits.shape == (2, classes)
    else:
        assert out.aux_logits is None


@pytest.mark.parametrize("rf", [299, 151, 79])
def test_receptive_field_variants_reach_17_and_8_grids(rf: int) -> None:
    sizes = grid_sizes(InceptionConfig(receptive_field=rf), rf)
    assert (sizes["17"], sizes["8"]) == (17, 8)
    assert sizes["aux"] >= 1


def test_inception_v2_stem_is_one_7x7_conv_to_147x147x64() -> None:
    model = create_model("inception_v2").eval()
    assert model.Conv2d_1a_3x3 is None and model.Conv2d_1a_7x7 is not None
    conv = model.Conv2d_1a_7x7.conv
    assert conv.kernel_size == (7, 7) and conv.stride == (2, 2) and conv.out_channels == 64
    seen = {}

    def hook(_m: nn.Module, _i: tuple, out: torch.Tensor) -> None:
        seen["shape"] = tuple(out.shape)

    model.Conv2d_1a_7x7.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.randn(1, 3, 299, 299))
    assert seen["shape"] == (1, 64, 147, 147)


def test_aux_head_bn_switch() -> None:
    with_bn, without_bn = inception_v3(), create_model("inception_v2_factorized_7x7")
    assert isinstance(with_bn.AuxLogits.conv1.bn, nn.BatchNorm2d) and with_bn.AuxLogits.conv1.conv.bias is None
    assert isinstance(without_bn.AuxLogits.conv1.bn, nn.Identity)
    assert without_bn.AuxLogits.conv1.conv.bias is not None


def test_linear_factorized_variant_drops_relu_on_first_layer_of_pairs() -> None:
    model = create_model("inception_v3_linear_factorized")
    linear = [n for n, m in model.named_modules() if isinstance(m, ConvBN) and isinstance(m.relu, nn.Identity)]
    assert "Mixed_5b.branch3x3dbl_2" in linear and "Mixed_6b.branch7x7_2" in linear
    assert "Mixed_6b.branch7x7dbl_2" in linear and "Mixed_6b.branch7x7dbl_4" in linear
    assert "Mixed_5b.branch3x3dbl_3" not in linear
    assert all(isinstance(m.bn, nn.BatchNorm2d) for n, m in model.named_modules() if n in linear)
    assert not any(isinstance(m.relu, nn.Identity) for m in inception_v3().modules() if isinstance(m, ConvBN))


def test_torchvision_checkpoint_loads_strict_and_matches() -> None:
    reference = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    # Random BN statistics so the comparison exercises every buffer, not just the defaults.
    for m in reference.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    ours = inception_v3(drop_rate=0.5)  # torchvision's default dropout; TF-slim's (and ours) is 0.2
    ours.load_state_dict(reference.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(reference.state_dict())
    x = torch.randn(2, 3, 299, 299)
    with torch.no_grad():
        diff = (ours.eval()(x) - reference.eval()(x)).abs().max().item()
    assert diff < 1e-4
    ours.train(), reference.train()
    torch.manual_seed(1)
    theirs = reference(x)
    torch.manual_seed(1)
    mine = ours.forward_with_aux(x)
    assert (mine.logits - theirs.logits).abs().max().item() < 1e-4
    assert (mine.aux_logits - theirs.aux_logits).abs().max().item() < 1e-4


def test_forward_returns_tensor_in_train_mode_and_under_torchscript_and_export() -> None:
    model = create_model("inception_v3_79", num_classes=10)
    x = torch.randn(2, 3, 79, 79)
    assert isinstance(model.train()(x), torch.Tensor)
    scripted = torch.jit.script(model)
    for mode in (True, False):
        assert isinstance(scripted.train(mode)(x), torch.Tensor)
    model.eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    exported = torch.export.export(model, (x,), dynamic_shapes={"x": {0: batch}})
    out = exported.module()(torch.randn(3, 3, 79, 79))
    assert isinstance(out, torch.Tensor) and out.shape == (3, 10)
    with torch.no_grad():
        assert torch.allclose(exported.module()(x), model(x), atol=1e-5)


def test_inception_v2_scripts() -> None:
    scripted = torch.jit.script(create_model("inception_v2", aux_logits=False).eval())
    assert scripted(torch.randn(1, 3, 75, 75)).shape == (1, 1000)


def test_input_normalization_is_saved_in_the_state_dict() -> None:
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    model = inception_v3(normalize_input=True, mean=mean, std=std, aux_logits=False).eval()
    state = model.state_dict()
    assert torch.allclose(state["input_norm.mean"].flatten(), torch.tensor(mean))
    rebuilt = inception_v3(normalize_input=True, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), aux_logits=False)
    rebuilt.load_state_dict(state)
    x = torch.rand(1, 3, 80, 80)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), model(x))
    assert "input_norm.mean" not in inception_v3().state_dict()


def test_width_multiplier_min_depth_and_gray_input() -> None:
    model = create_model("inception_v3_79", width_multiplier=0.25, min_depth=8, in_chans=1, num_classes=10,
                         mean=(0.5,), std=(0.5,))  # fmt: skip
    assert model.Conv2d_1a_3x3.conv.in_channels == 1
    assert model.Conv2d_1a_3x3.conv.out_channels == 8  # max(int(32 * 0.25), 8)
    assert model.Mixed_5b.branch_pool.conv.out_channels == 8
    assert model.num_features == 80 + 4 * 96 + 48
    assert model(torch.randn(2, 1, 79, 79)).shape == (2, 10)


def test_reset_classifier_replaces_both_heads() -> None:
    model = inception_v3()
    model.reset_classifier(7)
    assert model.fc.out_features == 7 and model.AuxLogits.fc.out_features == 7
    assert model.config.num_classes == 7
    assert model.AuxLogits.fc.weight.abs().max() <= 0.002


def test_truncated_normal_init() -> None:
    model = inception_v3()
    w = model.Mixed_7c.branch3x3dbl_2.conv.weight
    assert w.abs().max() <= 0.2 and 0.08 < w.std() < 0.095  # std 0.1 cut at 2 sigma -> 0.088
    assert model.AuxLogits.conv1.conv.weight.abs().max() <= 0.02
    assert model.AuxLogits.fc.weight.abs().max() <= 0.002
    bn = model.Mixed_7c.branch1x1.bn
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0) and bn.eps == 0.001


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((3, 299, 299), "4-D input"),
        ((1, 1, 299, 299), "expected 3 input channel"),
        ((1, 3, 74, 74), "minimum 75x75"),
        ((1, 3, 299, 60), "minimum 75x75"),
    ],
)
def test_bad_input_raises_clear_value_error(shape: tuple[int, ...], message: str) -> None:
    model = inception_v3(aux_logits=False).eval()
    with pytest.raises(ValueError, match=message):
        model(torch.randn(*shape))


def test_minimum_sizes_are_exact() -> None:
    for preset in ("inception_v3", "inception_v3_151", "inception_v3_79"):
        model = create_model(preset, aux_logits=False).eval()
        m = model.min_size
        assert model(torch.randn(1, 3, m, m)).shape == (1, 1000)
        with pytest.raises(ValueError, match=f"minimum {m}x{m}"):
            model(torch.randn(1, 3, m - 1, m - 1))
    model = inception_v3()
    assert min_input_size(model.config, with_aux=True) == 299
    with pytest.raises(ValueError, match="minimum 299x299"):
        model.forward_with_aux(torch.randn(2, 3, 298, 298))


def test_unknown_preset_and_config_values_list_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid presets: inception_v3, "):
        create_model("inception_v4")
    with pytest.raises(ValueError, match="valid values: 299, 151, 79"):
        get_config(receptive_field=100)
    with pytest.raises(ValueError, match="valid values: 'factorized', '7x7'"):
        InceptionConfig(stem="5x5")
    with pytest.raises(ValueError, match="unknown config field"):
        get_config(depth_multiplier=0.5)
    with pytest.raises(ValueError, match="one value per input channel"):
        InceptionConfig(in_chans=1)


def test_config_round_trips_through_dict() -> None:
    cfg = get_config("inception_v2", num_classes=10, width_multiplier=0.5)
    assert InceptionConfig.from_dict(cfg.to_dict()) == cfg


def test_stages_and_intermediates_are_the_forward_pass() -> None:
    model = create_model("inception_v3_79", width_multiplier=0.25, num_classes=10).eval()
    x = torch.randn(2, 3, 79, 79)
    with torch.no_grad():
        taps = model.forward_intermediates(x)  # feature_info's layers by default
        stem = model.forward_stem(model.input_norm(x))
        pre = model.forward_preaux(stem)
        features = model.forward_features(x)
        fid_taps = model.forward_intermediates(x, ["maxpool1", "maxpool2", "Mixed_6e"])
    assert list(taps) == [info["module"] for info in model.feature_info]
    assert [t.shape[1] for t in taps.values()] == [info["num_chs"] for info in model.feature_info]
    assert torch.equal(taps["Mixed_7c"], features) and torch.equal(model.forward_postaux(pre), features)
    assert torch.equal(fid_taps["maxpool2"], stem) and torch.equal(fid_taps["Mixed_6e"], pre)
    assert fid_taps["maxpool1"].shape[1] == model.Conv2d_2b_3x3.conv.out_channels
    with pytest.raises(ValueError, match="valid layers"):
        model.forward_intermediates(x, ["Mixed_9z"])


def test_init_is_tfs_truncated_normal() -> None:
    model = inception_v3()
    for name, std in (("Mixed_7c.branch3x3dbl_1.conv", 0.1), ("AuxLogits.conv1.conv", 0.01), ("AuxLogits.fc", 0.001)):
        w = model.get_submodule(name).weight
        assert w.abs().max() <= 2 * std  # cut at 2 sigma, relative to std (not torch's absolute default)
        assert w.std().item() == pytest.approx(0.8796 * std, rel=0.05)  # the std of N(0, 1) cut at +-2
    before = model.Mixed_7c.branch1x1.conv.weight.clone()
    model.reset_classifier(7)
    assert model.fc.weight.abs().max() <= 0.2 and model.AuxLogits.fc.weight.abs().max() <= 0.002
    assert torch.equal(model.Mixed_7c.branch1x1.conv.weight, before)  # only the classifiers are new
