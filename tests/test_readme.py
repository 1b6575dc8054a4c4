"""The README's Python examples run as written and do what their comments say."""

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def check_model_block(ns: dict) -> None:
    assert ns["logits"].shape == (2, 1000) and ns["aux"].shape == (2, 1000)
    assert ns["feats"].shape == (2, 2048, 8, 8) and ns["pooled"].shape == (2, 2048)
    assert ns["model"].fc.out_features == 10 and ns["model"].AuxLogits.fc.out_features == 10
    small = ns["small"]
    assert small.config.in_chans == 1 and small.fc.out_features == 10 and small.config.receptive_field == 79


def check_fast_block(ns: dict) -> None:
    x = torch.randn(2, 3, 299, 299)
    with torch.no_grad():
        want = ns["model"](x)
    assert ns["logits"].shape == (2, 10) and ns["logits"].dtype == torch.float32
    assert torch.allclose(ns["fast"](x), want, atol=0.1 * want.abs().max().item())
    got = ns["int8"](x)  # the README's model as written (random weights): its int8 copy runs and stays close
    assert got.shape == (2, 10)
    assert torch.nn.functional.cosine_similarity(got.flatten(), want.flatten(), dim=0) > 0.9


def check_weights_block(ns: dict) -> None:
    tuned, report = ns["tuned"], ns["report"]
    assert tuned.fc.out_features == 3 and tuned.AuxLogits.fc.out_features == 3
    assert sorted(report.replaced) == ["AuxLogits.fc.bias", "AuxLogits.fc.weight", "fc.bias", "fc.weight"]
    assert report.summary().startswith("loaded 576 tensors, replaced 4 (AuxLogits.fc, fc: new class count)")
    assert report.classes == []  # new classifiers: the saved class names no longer apply


def check_transforms_block(ns: dict) -> None:
    x = ns["x"]
    assert x.shape == (3, 299, 299) and x.dtype == torch.float32 and -1 <= x.min() < x.max() <= 1


# a name the block defines -> what must hold after it ran
CHECKS: dict[str, Callable[[dict], None]] = {"pooled": check_model_block, "int8": check_fast_block,
                                             "tuned": check_weights_block,
                                             "preprocess": check_transforms_block}  # fmt: skip


def test_readme_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # blocks that write files write them here
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    for code in blocks:
        namespace: dict = {}
        exec(compile(code, str(README), "exec"), namespace)
        checks = [check for name, check in CHECKS.items() if name in namespace]
        assert checks, f"no check for this README block; add one to tests/test_readme.py:\n{code}"
        for check in checks:
            check(namespace)
