"""Published Inception-v3 weights by name: where each file lives, how to check it, what its publisher
reports, the preprocessing it expects and its class names.

Facts come from the installed libraries wherever they know them: torchvision's weights enum (URL, hash
prefix, metrics, categories, transforms; torchvision is a dependency), timm's pretrained configs (hub
repository, mean/std, crop, interpolation), Keras' application module (URLs) and pytorch-fid's (URL),
when those are installed. What no installed library carries (timm's and Keras' reported accuracy,
Keras' md5 sums, the FID network's preprocessing) is recorded here with its source; the test suite
checks the recorded values against the libraries.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from functools import cache, partial
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..utils.download import MIRROR_ENV, cache_path, fetch_hub, fetch_url, hash_prefix


@dataclass(frozen=True)
class WeightsSpec:
    """One published weights file and what using it needs."""

    name: str
    source: str  # the publisher / library
    description: str
    url: str = ""  # a plain file (torch.hub download); empty for hub-hosted files
    hf_repo: str = ""  # a Hugging Face hub repository (hf_hub_download)
    hf_file: str = ""
    sha256: str = ""  # full digest or torch.hub prefix; empty: the hub's own sha256 is checked at download
    md5: str = ""
    file_size: str = ""  # as the publisher states it
    top1: float | None = None
    top5: float | None = None
    metrics_source: str = ""
    # the preprocessing the weights expect: "shorter" = resize the shorter side to size / crop_fraction and
    # center-crop size x size; "squash" = (central crop, then) resize to size x size ignoring aspect
    resize: str = "shorter"
    crop_fraction: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    preset: str = "inception_v3"
    num_classes: int = 1000
    has_classifier: bool = True
    categories: str = "imagenet-1k"  # "imagenet-1k", or "index" (no names published)
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def download_url(self) -> str:
        return self.url or f"https://huggingface.co/{self.hf_repo}/resolve/main/{self.hf_file}"

    def preprocessing(self) -> dict[str, Any]:
        """The single-crop preprocessing (mean/std go into the model config)."""
        return {"resize": self.resize, "crop_fraction": self.crop_fraction, "interpolation": self.interpolation}

    def class_names(self) -> list[str]:
        return imagenet_categories() if self.categories == "imagenet-1k" else [str(i) for i in range(self.num_classes)]


def imagenet_categories() -> list[str]:
    """ImageNet-1k's 1,000 class names in the standard index order (torchvision's list)."""
    from torchvision.models import Inception_V3_Weights

    return list(Inception_V3_Weights.IMAGENET1K_V1.meta["categories"])


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# timm's published ImageNet results (results/results-imagenet.csv in the timm repository, commit 0173a139):
# top-1 and top-5 at 299x299, crop 0.875, bicubic; and the weights' description.
TIMM_RESULTS = {
    "tf_in1k": (77.862, 93.644, "TF-slim's Inception-v3 (the paper's model), ported by timm"),
    "tf_adv_in1k": (77.592, 93.730, "TF's adversarially trained Inception-v3, ported by timm"),
    "gluon_in1k": (78.806, 94.374, "Gluon (MXNet) Inception-v3, ported by timm; ImageNet mean/std input"),
    "tv_in1k": (77.434, 93.474, "torchvision's original port (inception_v3_google-1a9a5a14), as hosted by timm"),
}
# Keras' InceptionV3 weights: md5 sums as given in keras.applications.inception_v3 (Keras 3.15).
_KERAS_WEIGHTS = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
    "inception_v3_weights_tf_dim_ordering_tf_kernels"
)
KERAS_URLS = {
    "keras/imagenet": (f"{_KERAS_WEIGHTS}.h5", "9a0d58056eeedaa3f26cb7ebd46da564"),
    "keras/imagenet-notop": (f"{_KERAS_WEIGHTS}_notop.h5", "bcbd6486424b2319ff4ef7d526e38f63"),
}
FID_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"


def _torchvision() -> WeightsSpec:
    from torchvision.models import Inception_V3_Weights

    w = Inception_V3_Weights.IMAGENET1K_V1
    t = w.transforms()
    metrics = w.meta["_metrics"]["ImageNet-1K"]
    return WeightsSpec(
        name="torchvision/IMAGENET1K_V1",
        source="torchvision",
        description=w.meta.get("_docs", "torchvision's Inception-v3"),
        url=w.url,
        sha256=hash_prefix(w.url),
        file_size=f"{w.meta['_file_size']:.1f} MB" if "_file_size" in w.meta else "",
        top1=metrics["acc@1"],
        top5=metrics["acc@5"],
        metrics_source="torchvision's weights enum",
        crop_fraction=t.crop_size[0] / t.resize_size[0],
        interpolation=t.interpolation.value,
        # torchvision normalizes with ImageNet mean/std and its hidden transform_input maps that to [-1, 1];
        # the same input, made explicit: mean = std = 0.5 on [0, 1] pixels.
    )


def _timm(tag: str) -> WeightsSpec:
    name = f"inception_v3.{tag}"
    cfg = _timm_cfg(name)
    top1, top5, description = TIMM_RESULTS[tag]
    return WeightsSpec(
        name=f"timm/{name}",
        source="timm (Hugging Face hub)",
        description=description,
        hf_repo=cfg["hf_hub_id"],
        hf_file="model.safetensors",
        top1=top1,
        top5=top5,
        metrics_source="timm results-imagenet.csv",
        crop_fraction=cfg["crop_pct"],
        interpolation=cfg["interpolation"],
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
    )


def _timm_cfg(name: str) -> dict[str, Any]:
    """timm's pretrained config when timm is installed; otherwise the same values as recorded from timm 1.0."""
    try:
        import timm

        cfg = timm.models.get_pretrained_cfg(name)
        if cfg is None:
            raise ImportError(f"timm does not know {name}")
        return cfg.to_dict()
    except ImportError:
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if name.endswith("gluon_in1k") else ((0.5,) * 3, (0.5,) * 3)
        return {"hf_hub_id": f"timm/{name}", "crop_pct": 0.875, "interpolation": "bicubic", "mean": mean, "std": std}


def _keras(name: str) -> WeightsSpec:
    url, md5 = KERAS_URLS[name]
    notop = name.endswith("notop")
    with suppress(ImportError):  # the URLs Keras itself downloads from, when Keras is installed
        os.environ.setdefault("KERAS_BACKEND", "torch")
        from keras.src.applications import inception_v3 as keras_inception

        url = keras_inception.WEIGHTS_PATH_NO_TOP if notop else keras_inception.WEIGHTS_PATH
    return WeightsSpec(
        name=name,
        source="Keras applications",
        description="Keras' InceptionV3 ImageNet weights" + (" without the classifier" if notop else ""),
        url=url,
        md5=md5,
        metrics_source="Keras publishes no accuracy for these weights",
        resize="squash",
        crop_fraction=1.0,
        has_classifier=not notop,
    )


def _fid() -> WeightsSpec:
    url = FID_URL
    with suppress(ImportError):
        from pytorch_fid.inception import FID_WEIGHTS_URL

        url = FID_WEIGHTS_URL
    return WeightsSpec(
        name="pytorch-fid/2015-12-05",
        source="pytorch-fid",
        description="the FID tools' Inception network (TF graph inception-2015-12-05, 1008 classes)",
        url=url,
        sha256=hash_prefix(url),
        metrics_source="not a classifier people report accuracy for; used for FID",
        resize="squash",
        crop_fraction=1.0,
        preset="inception_v3_fid",
        num_classes=1008,
        categories="index",
    )


# name -> (aliases, how to build the entry): entries are built when asked for (Keras' module is slow to import).
_BUILTIN: dict[str, tuple[tuple[str, ...], Callable[[], WeightsSpec]]] = {
    "torchvision/IMAGENET1K_V1": (("IMAGENET1K_V1", "DEFAULT", "inception_v3.tv", "torchvision"), _torchvision),
    **{f"timm/inception_v3.{t}": ((f"inception_v3.{t}", t), partial(_timm, t)) for t in TIMM_RESULTS},
    "keras/imagenet": (("keras", "imagenet"), partial(_keras, "keras/imagenet")),
    "keras/imagenet-notop": (("keras-notop",), partial(_keras, "keras/imagenet-notop")),
    "pytorch-fid/2015-12-05": (("fid", "pt_inception-2015-12-05"), _fid),
}


@cache
def _build(name: str) -> WeightsSpec:
    aliases, factory = _BUILTIN[name]
    return replace(factory(), name=name, aliases=aliases)


_REGISTERED: list[WeightsSpec] = []


def register_weights(spec: WeightsSpec) -> None:
    """Add (or replace) named weights, e.g. a file on your own server: `WeightsSpec(name=..., url=..., sha256=...)`."""
    _REGISTERED[:] = [s for s in _REGISTERED if s.name != spec.name] + [spec]


def list_weights() -> list[WeightsSpec]:
    """Every known weights entry: the built-in ones, then the registered ones."""
    registered = {s.name for s in _REGISTERED}
    return [_build(n) for n in _BUILTIN if n not in registered] + list(_REGISTERED)


def find_weights(name: str) -> WeightsSpec | None:
    """The entry a name or alias stands for, or None."""
    for spec in reversed(_REGISTERED):
        if name == spec.name or name in spec.aliases:
            return spec
    for key, (aliases, _) in _BUILTIN.items():
        if name == key or name in aliases:
            return _build(key)
    return None


def get_weights(name: str) -> WeightsSpec:
    spec = find_weights(name)
    if spec is None:
        names = ", ".join(s.name for s in list_weights())
        raise UserError(f"unknown weights {name!r}; known weights: {names} (or give a file path or an http(s) URL)")
    return spec


def fetch(spec: WeightsSpec, progress: bool = True) -> Path:
    """The local file of named weights (from a mirror when INCEPTION_V3_MIRROR is set)."""
    if spec.hf_repo:
        return fetch_hub(spec.hf_repo, spec.hf_file, spec.sha256, progress)
    mirror = os.environ.get(MIRROR_ENV)
    url = mirror.rstrip("/") + "/" + spec.url.rsplit("/", 1)[-1] if mirror else spec.url
    return fetch_url(url, spec.sha256, spec.md5, progress)


def cached_file(spec: WeightsSpec) -> Path | None:
    """The cached file of named weights, if it has been downloaded (no network)."""
    if spec.hf_repo:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(spec.hf_repo, spec.hf_file)
        return Path(found) if isinstance(found, str) else None
    path = cache_path(spec.url)
    return path if path.is_file() else None


def weights_table() -> list[dict[str, Any]]:
    """Every named weights entry as plain data: source, file, checksum, accuracy, input, classes, cache state."""
    rows: list[dict[str, Any]] = []
    for w in list_weights():
        cached = cached_file(w)
        facts = {k: getattr(w, k) for k in ("file_size", "sha256", "md5", "top1", "top5", "metrics_source")}
        rows.append(
            {
                "name": w.name,
                "aliases": list(w.aliases),
                "source": w.source,
                "description": w.description,
                "url": w.download_url,
                **facts,
                "preprocessing": {**w.preprocessing(), "mean": list(w.mean), "std": list(w.std)},
                "classes": f"{w.num_classes} ({'indices' if w.categories == 'index' else 'ImageNet-1k names'})",
                "classifier": w.has_classifier,
                "preset": w.preset,
                "cached": str(cached) if cached else None,
                "cached_size": cached.stat().st_size if cached else None,
            }
        )
    return rows
