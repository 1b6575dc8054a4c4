"""The published weights by name: their facts agree with the libraries that publish them."""

import json
import os

import pytest

from inception_v3.cli import main
from inception_v3.interop.registry import KERAS_URLS, TIMM_RESULTS, get_weights, list_weights

os.environ.setdefault("KERAS_BACKEND", "torch")


def test_every_anchor_is_listed_with_its_facts(capsys: pytest.CaptureFixture[str]) -> None:
    names = {w.name for w in list_weights()}
    assert {"torchvision/IMAGENET1K_V1", "keras/imagenet", "pytorch-fid/2015-12-05"} <= names
    assert {f"timm/inception_v3.{t}" for t in ("tf_in1k", "tf_adv_in1k", "gluon_in1k", "tv_in1k")} <= names
    assert main(["weights", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for row in rows.values():
        assert row["url"].startswith("https://") and row["preprocessing"]["interpolation"] in ("bilinear", "bicubic")
        assert row["sha256"] or row["md5"] or "huggingface.co" in row["url"]
    assert (
        rows["torchvision/IMAGENET1K_V1"]["top1"] == 77.294 and rows["timm/inception_v3.gluon_in1k"]["top1"] == 78.806
    )
    assert main(["weights"]) == 0
    assert "inception_v3_google-0cc3c7bd.pth" in capsys.readouterr().out


def test_facts_come_from_or_agree_with_the_libraries() -> None:
    import inspect

    import timm
    from keras.src.applications import inception_v3 as keras_inception
    from pytorch_fid.inception import FID_WEIGHTS_URL
    from torchvision.models import Inception_V3_Weights

    tv = get_weights("IMAGENET1K_V1")
    w = Inception_V3_Weights.IMAGENET1K_V1
    assert tv.url == w.url and w.url.endswith(f"-{tv.sha256}.pth") and tv.top5 == 93.45
    assert tv.class_names() == w.meta["categories"] and len(tv.class_names()) == 1000
    assert tv.crop_fraction == pytest.approx(299 / 342) and tv.interpolation == "bilinear"
    for tag in TIMM_RESULTS:
        spec, cfg = get_weights(f"timm/inception_v3.{tag}"), timm.models.get_pretrained_cfg(f"inception_v3.{tag}")
        assert spec.hf_repo == cfg.hf_hub_id and spec.crop_fraction == cfg.crop_pct
        assert spec.mean == tuple(cfg.mean) and spec.std == tuple(cfg.std) and spec.interpolation == cfg.interpolation
    source = inspect.getsource(keras_inception)
    for name, (url, md5) in KERAS_URLS.items():
        assert get_weights(name).url == url and md5 in source
    assert url == keras_inception.WEIGHTS_PATH_NO_TOP
    assert get_weights("fid").url == FID_WEIGHTS_URL and get_weights("fid").num_classes == 1008
