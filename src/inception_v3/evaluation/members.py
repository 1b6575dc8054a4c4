"""The models an evaluation, a prediction or a feature pass runs: each ensemble member's network, how its
weights expect a single crop to be taken, and its input convention; and the softmax averaged over crops and
members (Table 5's ensembles)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn
from torchvision.transforms import v2

from ..data.crops import ViewSpec, crop_views, single_crop_transform
from ..data.transforms import model_input
from ..errors import UserError
from ..interop.loading import LoadReport
from ..interop.pretrained import load_pretrained
from ..models.config import InceptionConfig
from ..utils.devices import model_device


@dataclass
class Member:
    """One model of an evaluation (an ensemble has several): the network, how its weights expect a single
    crop to be taken, and what was loaded."""

    model: nn.Module
    view: ViewSpec
    report: LoadReport
    config: InceptionConfig

    def transform(self) -> v2.Compose:
        """A uint8 C x H x W image -> this member's input for the single central crop."""
        c = self.config
        return single_crop_transform(c.receptive_field, self.view, c.in_chans, c.mean, c.std)

    def describe(self) -> str:
        """One line: which weights, what was loaded, how images are cropped."""
        v = self.view
        crop = f"{v.resize} crop {v.crop_fraction:.3f}, {v.interpolation}"
        return f"{self.report.weights} ({self.report.source}; {self.report.summary()}; {crop})"


def load_members(
    weights: list[str], central_fraction: float | None = None, device: torch.device | str = "cpu"
) -> tuple[list[Member], list[str]]:
    """The ensemble's models (eval mode, on `device`) with their preprocessing, and their shared class names.
    `central_fraction` overrides the crop fraction the weights come with."""
    members: list[Member] = []
    classes: list[str] | None = None
    for path in weights:
        model, report = load_pretrained(path)
        names = report.classes or [str(i) for i in range(model.config.num_classes)]
        if classes is not None and names != classes:
            raise UserError(
                f"{path} predicts other classes than {weights[0]} ({len(names)} vs {len(classes)}); "
                f"ensemble members must share their classes"
            )
        classes = names
        view = ViewSpec.from_dict(report.preprocessing)
        if central_fraction is not None:
            view = replace(view, crop_fraction=central_fraction)
        members.append(Member(model.eval().to(device), view, report, model.config))
    assert classes is not None
    return members, classes


@torch.no_grad()
def predict_probs(members: list[Member], images: list[Tensor], protocol: str) -> Tensor:
    """Class probabilities (N x K, on the CPU) for N uint8 images: softmax averaged over crops, then over ensemble
    members. The crops are cut where the images are (the CPU, or the GPU that decoded them) and normalized on
    each member's device."""
    if len({im.shape[0] for im in images}) > 1:  # gray, RGB and RGBA together: RGB for all (exact for gray)
        images = [im.expand(3, -1, -1) if im.shape[0] == 1 else im[:3] for im in images]
    out = []
    for m in members:
        c, device = m.config, model_device(m.model)
        views = torch.stack([crop_views(im, c.receptive_field, protocol, m.view) for im in images])
        chunks = views.flatten(0, 1).split(128)  # (N * crops) x C x H x W, 128 at a time
        inputs = (model_input(chunk.to(device), c.in_chans, c.mean, c.std) for chunk in chunks)
        probs = torch.cat([m.model(x).softmax(1).cpu() for x in inputs])
        out.append(probs.view(len(images), -1, probs.shape[1]).mean(1))
    return torch.stack(out).mean(0)
