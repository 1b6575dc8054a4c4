"""Shared test settings: deterministic, and the weights caches in a temporary folder (never the user's,
never the internet: download tests serve their files from 127.0.0.1)."""

import dataclasses
import os
from typing import Any

import pytest
import torch

if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # Several pytest workers share the cores: one thread each, in this process and in the commands it
    # starts (the tests that compare in-process with subprocess runs then sum in the same order).
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`--dist loadgroup` sends the tests of one `xdist_group` to one worker, so their expensive fixture is built
    once. pytest-xdist 3.8 marks a group by renaming the test (`nodeid@group`) through an attribute that pytest
    9.2 no longer reads: rename it here (parametrized tests keep their names and go wherever; none of them
    needs a group's fixture)."""
    if getattr(config.option, "dist", "no") != "loadgroup" and not getattr(config.option, "loadgroup", False):
        return  # (a worker sees `loadgroup`, the controller `dist`)
    for item in items:
        node_id = getattr(item, "_id", None)  # pytest >= 9.2 (before it, xdist's own renaming works)
        if node_id is None:
            return
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                         for m in item.iter_markers("xdist_group")})  # fmt: skip
        if groups and node_id.params is None and "@" not in item.nodeid:
            last = f"{node_id.names[-1]}@{'_'.join(groups)}"
            item._id = dataclasses.replace(node_id, names=(*node_id.names[:-1], last))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The suite's one real training run (Fashion-MNIST classes 0-4, width 1/16, 120 steps of 32): the learning
    test checks that it learned, the evaluate and predict tests read its checkpoint, and the fine-tuning tests
    start from it on classes 5-9. Tests that use it share the xdist group `trained_run`, so it is trained once."""
    from benchmarks.learning_margin import TEST_SETTINGS  # the settings whose margin the benchmark measures
    from inception_v3.training.loop import train
    from inception_v3.training.recipes import get_recipe

    out = str(tmp_path_factory.mktemp("trained"))
    return train(get_recipe("fashion-mnist", **TEST_SETTINGS, amp="none", out_dir=out, name="learn"))


@pytest.fixture(autouse=True)
def _seed_and_private_caches(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    caches = tmp_path_factory.mktemp("caches")
    monkeypatch.setenv("TORCH_HOME", str(caches / "torch"))
    monkeypatch.setenv("HF_HOME", str(caches / "hf"))
    monkeypatch.setenv("INCEPTION_V3_CACHE", str(caches / "inception-v3"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("INCEPTION_V3_MIRROR", "http://127.0.0.1:9")  # a named download without a test server fails
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
