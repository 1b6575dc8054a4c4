"""Weight interop: our format, torchvision and timm files, fine-tuning helpers, torch.hub."""

from pathlib import Path

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

from helpers import realistic_bn
from inception_v3 import create_model, inception_v3
from inception_v3.errors import UserError
from inception_v3.weights import freeze_until, from_pretrained, load_pretrained, save_pretrained

pytestmark = pytest.mark.xdist_group("weights")  # its module fixture is built once

ROOT = Path(__file__).resolve().parents[1]


def randomize_bn(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)


def test_save_and_from_pretrained_round_trip(tmp_path: Path) -> None:
    model = create_model("inception_v3_79", width_multiplier=0.25, num_classes=7).eval()
    randomize_bn(model)
    save_pretrained(model, tmp_path / "m", classes=list("abcdefg"))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    again = from_pretrained(tmp_path / "m").eval()
    assert again.config == model.config
    x = torch.randn(2, 3, 79, 79)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))


def test_torchvision_pth_loads_and_matches(tmp_path: Path) -> None:
    reference = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).eval()
    randomize_bn(reference)
    torch.save(reference.state_dict(), tmp_path / "inception_v3_google-0cc3c7bd.pth")
    model, report = load_pretrained(tmp_path / "inception_v3_google-0cc3c7bd.pth")
    assert len(report.loaded) == len(model.state_dict()) and not report.new and not report.replaced
    assert model.config.mean == (0.5, 0.5, 0.5)  # transform_input made explicit: [-1, 1] input
    x = torch.rand(2, 3, 299, 299) * 2 - 1
    with torch.no_grad():
        assert (model.eval()(x) - reference(x)).abs().max() < 1e-4


def test_timm_safetensors_loads_and_matches(tmp_path: Path) -> None:
    reference = timm.create_model("inception_v3", pretrained=False, aux_logits=True).eval()
    randomize_bn(reference)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(tmp_path / "model.safetensors"))
    model, _ = load_pretrained(tmp_path / "model.safetensors")
    x = torch.randn(2, 3, 299, 299)
    with torch.no_grad():
        theirs = reference(x)
        theirs = theirs[0] if isinstance(theirs, tuple) else theirs  # timm returns (logits, aux) with the head
        assert (model.eval()(x) - theirs).abs().max() < 1e-4


def test_new_class_count_replaces_both_classifiers(tmp_path: Path) -> None:
    torch.save(inception_v3().state_dict(), tmp_path / "w.pth")
    model, report = load_pretrained(tmp_path / "w.pth", num_classes=5)
    assert model.fc.out_features == 5 and model.AuxLogits.fc.out_features == 5
    assert sorted(report.replaced) == ["AuxLogits.fc.bias", "AuxLogits.fc.weight", "fc.bias", "fc.weight"]
    assert "replaced 4" in report.summary()
    frozen = freeze_until(model, "Mixed_6e")
    assert "Mixed_6e.branch_pool.conv.weight" in frozen and not model.Mixed_6e.branch1x1.conv.weight.requires_grad
    assert model.Mixed_7a.branch3x3_1.conv.weight.requires_grad and model.fc.weight.requires_grad
    with pytest.raises(UserError, match="valid blocks"):
        freeze_until(model, "Mixed_9z")


def test_other_architecture_is_refused_with_the_mismatches(tmp_path: Path) -> None:
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(UserError, match="does not fit this architecture"):
        load_pretrained(tmp_path / "resnet.pth")
    torch.save(create_model("inception_v3", width_multiplier=0.5).state_dict(), tmp_path / "half.pth")
    with pytest.raises(UserError, match=r"another shape.*Conv2d_1a_3x3\.conv\.weight: file \[16, 3, 3, 3\]"):
        load_pretrained(tmp_path / "half.pth")
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(UserError, match="unknown weights format"):
        load_pretrained(tmp_path / "w.onnx")


def test_torch_hub_local(tmp_path: Path) -> None:
    model = create_model("inception_v3_79", width_multiplier=0.25, num_classes=3)
    save_pretrained(model, tmp_path / "m")
    loaded = torch.hub.load(str(ROOT), "inception_v3", source="local", weights=str(tmp_path / "m"))
    assert loaded.config == model.config
    fresh = torch.hub.load(str(ROOT), "inception_v3", source="local", num_classes=10)
    assert fresh.fc.out_features == 10


def test_convert_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from inception_v3.cli import main

    reference = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    torch.save(reference.state_dict(), tmp_path / "tv.pth")
    assert main(["convert", str(tmp_path / "tv.pth"), str(tmp_path / "out")]) == 0
    assert "loaded 580 tensors" in capsys.readouterr().out
    assert from_pretrained(tmp_path / "out").config.num_classes == 1000
    assert main(["convert", str(tmp_path / "tv.pth"), str(tmp_path / "out")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "missing.pth"), str(tmp_path / "out2")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "out2").exists()


def test_torchvision_transform_input_becomes_explicit_normalization(tmp_path: Path) -> None:
    # torchvision's released model: ImageNet-normalized input, re-normalized inside by transform_input
    reference = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False,
                                                transform_input=True).eval()  # fmt: skip
    torch.save(reference.state_dict(), tmp_path / "tv.pth")
    model, _ = load_pretrained(tmp_path / "tv.pth")
    pixels = torch.rand(2, 3, 299, 299)  # images in [0, 1]
    imagenet = torchvision.transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    ours_norm = torchvision.transforms.Normalize(model.config.mean, model.config.std)
    with torch.no_grad():
        assert (model.eval()(ours_norm(pixels)) - reference(imagenet(pixels))).abs().max() < 1e-4


@pytest.fixture(scope="module")
def partial_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision-layout file of the full model that lacks 40% of its tensors, conv and batch-norm ones too."""
    state = realistic_bn(inception_v3(), 299, passes=1, batch=2).state_dict()
    keys = list(state)
    dropped = set(keys[::5] + keys[1::5])  # 40%, spread over the whole network
    assert any(".conv." in k for k in dropped) and any(".bn." in k for k in dropped)
    path = tmp_path_factory.mktemp("partial") / "partial.pth"
    torch.save({k: v for k, v in state.items() if k not in dropped}, path)
    return path


def test_a_partial_file_is_refused_everywhere(partial_file: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from PIL import Image

    from inception_v3.cli import main

    with pytest.raises(UserError, match=r"tensors the model needs are missing \(first: Conv2d_1a_3x3"):
        load_pretrained(partial_file)
    (tmp_path / "img").mkdir()
    Image.new("RGB", (40, 40)).save(tmp_path / "img" / "a.png")
    (tmp_path / "val" / "x").mkdir(parents=True)
    Image.new("RGB", (40, 40)).save(tmp_path / "val" / "x" / "a.png")
    commands = [
        ["convert", str(partial_file), str(tmp_path / "out")],
        ["predict", str(partial_file), str(tmp_path / "img")],
        ["evaluate", str(partial_file), "--data", str(tmp_path / "val")],
        ["export", str(partial_file), "--format", "onnx", "--output", str(tmp_path / "m.onnx")],
        ["fid", str(tmp_path / "img"), str(tmp_path / "img"), "--weights", str(partial_file)],
        ["features", str(tmp_path / "img"), "--weights", str(partial_file), "--output", str(tmp_path / "f.npz")],
    ]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for args in commands:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert "missing" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


def test_aux_head_and_classifier_are_said_not_silent(tmp_path: Path) -> None:
    reference = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    torch.save(reference.state_dict(), tmp_path / "no_aux.pth")
    model, report = load_pretrained(tmp_path / "no_aux.pth")
    assert model.AuxLogits is None and "no aux head" in report.summary() and not report.new
    with_aux, report = load_pretrained(tmp_path / "no_aux.pth", aux_logits=True)  # asked for: a new aux head
    assert with_aux.AuxLogits is not None and all(k.startswith("AuxLogits.") for k in report.new)
    assert "new aux head" in report.summary()
    state = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    torch.save(state, tmp_path / "no_fc.pth")
    with pytest.raises(UserError, match="has no classifier"):
        load_pretrained(tmp_path / "no_fc.pth")
    model, report = load_pretrained(tmp_path / "no_fc.pth", num_classes=3)
    assert model.fc.out_features == 3 and sorted(report.new) == ["fc.bias", "fc.weight"]
