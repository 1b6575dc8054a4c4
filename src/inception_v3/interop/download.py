"""Downloading weights with the libraries made for it, into the standard caches.

- Plain files (torchvision, Keras, the FID network, any http(s) URL): torch.hub's
  `download_url_to_file` (progress bar) into `$TORCH_HOME/hub/checkpoints`. The file is downloaded
  beside the cache entry under a temporary name, checked (sha256, or the hash prefix in its name by
  torch.hub's convention, or md5; then parsed, which also catches a connection dropped mid-file) and
  only then renamed into place. `INCEPTION_V3_MIRROR=https://host/path` fetches named files from a mirror
  that holds them under their own names.
- Hugging Face hub files (timm's weights): `hf_hub_download` into `$HF_HOME/hub`; the cache is tried
  first without touching the network; after a download, the file's sha256 is checked against the
  hub's own record (the blob's name) before it is used, and a file that fails is removed from the
  cache. `HF_ENDPOINT` points the hub client at a mirror.
A download that fails names the URL and says where to put the file by hand.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import uuid
from http.client import HTTPException
from pathlib import Path
from urllib.error import URLError

import torch

from ..errors import UserError, reason
from ..utils.io import refuse_if_tampered
from ..utils.progress import on_terminal
from .registry import WeightsSpec, hash_prefix

MIRROR_ENV = "INCEPTION_V3_MIRROR"
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_path(url: str) -> Path:
    """Where torch.hub keeps a downloaded file: $TORCH_HOME/hub/checkpoints/<file name>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1].split("?", 1)[0]


def check_file(path: Path, sha256: str, md5: str, what: str) -> None:
    """Raise UserError unless the file matches the expected digests and parses as a weights file."""
    if sha256:
        actual = file_digest(path)
        if not actual.startswith(sha256):
            raise UserError(f"{what} is damaged or not the published file: sha256 {actual[:16]}... does not match "
                            f"the expected {sha256[:16]}...")  # fmt: skip
    if md5 and file_digest(path, "md5") != md5:
        raise UserError(f"{what} is damaged or not the published file: its md5 does not match {md5}")
    if not _parses(path):
        raise UserError(f"{what} is incomplete or not a weights file (it does not parse)")


def _parses(path: Path) -> bool:
    """Whether the file is a complete safetensors, PyTorch (zip) or HDF5 file."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head == b"\x89HDF\r\n\x1a\n":
        try:
            import h5py
        except ImportError:
            raise UserError("Keras weight files need h5py: pip install 'inception-v3[keras]'") from None
    try:
        if head[:4] == b"PK\x03\x04":  # torch.save's zip format: the central directory must be intact
            import zipfile

            with zipfile.ZipFile(path) as z:
                return z.testzip() is None
        if head == b"\x89HDF\r\n\x1a\n":
            with h5py.File(path, "r") as f:
                f.visit(lambda _name: None)
            return True
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118  (safe_open has keys(), not iteration)
                f.get_slice(key)
        return True
    except Exception:  # every parser has its own error types; any of them means "not a complete file"
        return False


def fetch_url(url: str, sha256: str = "", md5: str = "", progress: bool = True) -> Path:
    """A file from `url` in torch.hub's cache, downloaded and checked if it is not there yet."""
    sha256 = sha256 or hash_prefix(url)
    dst = cache_path(url)
    if dst.is_file():
        try:
            check_file(dst, sha256, md5, f"the cached {dst}")
            return dst
        except UserError as exc:
            refuse_if_tampered(dst, "cached weights file")  # changed to run code: kept, not replaced
            print(f"{exc}; downloading it again", file=sys.stderr)
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.download")
    try:
        try:
            torch.hub.download_url_to_file(
                url, str(staging), hash_prefix=None, progress=progress and on_terminal()
            )  # a bar, not a log's lines
        except (URLError, HTTPException, OSError, ValueError) as exc:
            why = getattr(exc, "reason", None) or exc
            raise UserError(f"cannot download {url} ({why}); download it by hand to {dst}, or set {MIRROR_ENV} "
                            f"to a mirror that has {dst.name}") from None  # fmt: skip
        check_file(staging, sha256, md5, f"the download of {url}")
        os.replace(staging, dst)
    finally:
        staging.unlink(missing_ok=True)
    return dst


def fetch_hub(repo: str, filename: str, sha256: str = "", progress: bool = True) -> Path:
    """A file of a Hugging Face hub repository, from the hub's cache or downloaded into it, sha256-checked."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    from huggingface_hub.utils import disable_progress_bars

    try:
        path = Path(hf_hub_download(repo, filename, local_files_only=True))
        downloaded = False
    except LocalEntryNotFoundError:
        url = f"{os.environ.get('HF_ENDPOINT', 'https://huggingface.co').rstrip('/')}/{repo}/resolve/main/{filename}"
        if not (progress and on_terminal()):  # the hub client's bars write carriage returns into logs
            disable_progress_bars()
        try:
            path = Path(hf_hub_download(repo, filename))
        except Exception as exc:  # the hub client raises HTTP, connection and consistency errors of several types
            raise UserError(f"cannot download {url} ({reason(exc)}); download it by hand and pass its path, or set "
                            f"HF_ENDPOINT to a mirror of the hub") from None  # fmt: skip
        downloaded = True
    blob = path.resolve()
    expected = sha256 or (blob.name if SHA256_HEX.match(blob.name) else "")
    try:
        check_file(blob, expected, "", f"{'the download of' if downloaded else 'the cached'} {repo}/{filename}")
    except UserError:
        refuse_if_tampered(blob, "cached weights file")  # changed to run code: kept as evidence, not removed
        blob.unlink(missing_ok=True)  # a file that fails its check does not stay in the cache
        path.unlink(missing_ok=True)
        raise
    return path


def fetch(spec: WeightsSpec, progress: bool = True) -> Path:
    """The local file of named weights (from a mirror when INCEPTION_V3_MIRROR is set)."""
    if spec.hf_repo:
        return fetch_hub(spec.hf_repo, spec.hf_file, spec.sha256, progress)
    url = spec.url
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        url = mirror.rstrip("/") + "/" + url.rsplit("/", 1)[-1]
    return fetch_url(url, spec.sha256, spec.md5, progress)


def cached_file(spec: WeightsSpec) -> Path | None:
    """The cached file of named weights, if it has been downloaded (no network)."""
    if spec.hf_repo:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(spec.hf_repo, spec.hf_file)
        return Path(found) if isinstance(found, str) else None
    path = cache_path(spec.url)
    return path if path.is_file() else None
