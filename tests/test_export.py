"""Export: BN folding keeps outputs, every format serves one tensor with a dynamic batch."""

import json
from pathlib import Path

import onnxruntime as ort
import pytest
import torch

from helpers import realistic_bn
from inception_v3 import create_model
from inception_v3.cli import main
from inception_v3.deploy.export import compare_outputs
from inception_v3.deploy.fusion import fold_batchnorm
from inception_v3.errors import UserError
from inception_v3.weights import save_pretrained


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = create_model("inception_v3_79", width_multiplier=0.125, min_depth=8, num_classes=10)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return save_pretrained(model, tmp_path_factory.mktemp("w") / "model")


def test_folding_keeps_the_outputs(weights: Path) -> None:
    from inception_v3.weights import from_pretrained

    model = from_pretrained(weights).eval()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(3, 3, 79, 79)
    with torch.no_grad():
        assert (folded(x) - model(x)).abs().max() < 1e-4


@pytest.mark.parametrize("fmt", ["torchscript", "exported-program", "onnx"])
def test_export_formats_serve_a_dynamic_batch(weights: Path, tmp_path: Path, fmt: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from inception_v3.weights import from_pretrained

    out = tmp_path / f"model.{fmt}"
    assert main(["export", str(weights), "--format", fmt, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    x = torch.randn(5, 3, 79, 79)
    with torch.no_grad():
        want = from_pretrained(weights).eval()(x)
    if fmt == "torchscript":
        got = torch.jit.load(str(out))(x)
    elif fmt == "exported-program":
        got = torch.export.load(str(out)).module()(x)
    else:
        assert "max abs diff" in printed
        got = torch.from_numpy(ort.InferenceSession(str(out)).run(None, {"images": x.numpy()})[0])
    assert isinstance(got, torch.Tensor) and got.shape == (5, 10)
    assert (got - want).abs().max() < 1e-4
    # an existing file is not replaced
    assert main(["export", str(weights), "--format", fmt, "--output", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_export_features(weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "features.onnx"
    assert main(["export", str(weights), "--format", "onnx", "--output", str(out), "--features"]) == 0
    session = ort.InferenceSession(str(out))
    assert session.get_outputs()[0].name == "features"
    assert session.run(None, {"images": torch.randn(2, 3, 79, 79).numpy()})[0].shape[0] == 2


def test_export_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path / "nope.pt"), "--format", "onnx", "--output", str(tmp_path / "x.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()


def test_full_size_onnx_check_scales_with_the_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The released architecture at 299x299 with batch-norm statistics from real use: logits of a few units,
    # where an absolute 1e-4 bound refused ordinary fp32 differences between onnxruntime and PyTorch.
    model = realistic_bn(create_model("inception_v3", num_classes=1000), 299, passes=2, batch=4)
    save_pretrained(model, tmp_path / "full")
    out = tmp_path / "full.onnx"
    assert main(["export", str(tmp_path / "full"), "--format", "onnx", "--output", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert 0 < info["onnx_relative_diff"] < 1e-3
    x = torch.rand(2, 3, 299, 299) * 2 - 1
    with torch.no_grad():
        want = model(x)
    got = torch.from_numpy(ort.InferenceSession(str(out)).run(None, {"images": x.numpy()})[0])
    assert want.abs().max() > 1.0  # realistic magnitudes
    compare_outputs(want, got)  # raises unless within 1e-3 of the scale and the same classes where not tied
    # a genuinely wrong export is still refused: 1% off, or another class where PyTorch is not tied
    with pytest.raises(UserError, match="differs from PyTorch"):
        compare_outputs(want, got * 1.01)
    swapped = want.clone()
    top = want.argmax(1)
    swapped[torch.arange(2), top] = want.min(1).values - 1
    with pytest.raises(UserError, match=r"differs from PyTorch|other classes"):
        compare_outputs(want, swapped)
