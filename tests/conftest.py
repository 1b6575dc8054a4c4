"""Shared test settings: deterministic, and the weights caches in a temporary folder (never the user's,
never the internet: download tests serve their files from 127.0.0.1)."""

import pytest
import torch


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
