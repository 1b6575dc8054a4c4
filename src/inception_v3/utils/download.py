"""The one download module: files fetched with the libraries made for it, into the standard caches.

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
- WebDataset shards by URL (`https://`, `pipe:COMMAND`, any scheme of webdataset's openers): fetched once
  into `$INCEPTION_V3_CACHE/wds-shards`, since reading them by index needs random access (`fetch_remote`).
A download that fails names the URL and says where to put the file by hand.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import uuid
import zipfile
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlsplit

import torch

from ..errors import UserError, reason
from .io import cache_root, refuse_if_tampered
from .progress import on_terminal, progress_bar

log = logging.getLogger(__name__)
MIRROR_ENV = "INCEPTION_V3_MIRROR"
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
HASH_SUFFIX = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")  # torch.hub's convention: name-<sha256 prefix>.ext


def hash_prefix(url: str) -> str:
    """The sha256 prefix a file name carries by torch.hub's convention (empty if it carries none)."""
    match = HASH_SUFFIX.search(url.split("?", 1)[0])
    return match.group(1) if match else ""


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_path(url: str) -> Path:
    """Where torch.hub keeps a downloaded file: $TORCH_HOME/hub/checkpoints/<file name>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1].split("?", 1)[0]


def check_file(path: Path, sha256: str, md5: str, what: str, parses: Callable[[Path], None] | None = None) -> None:
    """Raise UserError unless the file matches the expected digests and parses: as a weights file, or as
    `parses` (raising UserError) says."""
    if sha256:
        actual = file_digest(path)
        if not actual.startswith(sha256):
            raise UserError(
                f"{what} is damaged or not the published file: sha256 {actual[:16]}... does not match "
                f"the expected {sha256[:16]}..."
            )
    if md5 and file_digest(path, "md5") != md5:
        raise UserError(f"{what} is damaged or not the published file: its md5 does not match {md5}")
    if parses is not None:
        try:
            parses(path)
        except UserError as exc:
            raise UserError(f"{what} is incomplete or not the file expected: {exc}") from None
    elif not _parses(path):
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


def fetch_url(
    url: str, sha256: str = "", md5: str = "", progress: bool = True, check: Callable[[Path], None] | None = None
) -> Path:
    """A file from `url` in torch.hub's cache, downloaded and checked if it is not there yet: its digests, and
    that it parses (as weights, or as `check` says)."""
    sha256 = sha256 or hash_prefix(url)
    dst = cache_path(url)
    if dst.is_file():
        try:
            check_file(dst, sha256, md5, f"the cached {dst}", check)
            return dst
        except UserError as exc:
            refuse_if_tampered(dst, "cached weights file")  # changed to run code: kept, not replaced
            log.warning("%s; downloading it again", exc)
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.download")
    try:
        try:
            # a bar on a terminal, not a log's lines
            torch.hub.download_url_to_file(url, str(staging), hash_prefix=None, progress=progress and on_terminal())
        except (URLError, HTTPException, OSError, ValueError) as exc:
            why = getattr(exc, "reason", None) or exc
            raise UserError(
                f"cannot download {url} ({why}); download it by hand to {dst}, or set {MIRROR_ENV} "
                f"to a mirror that has {dst.name}"
            ) from None
        check_file(staging, sha256, md5, f"the download of {url}", check)
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
            raise UserError(
                f"cannot download {url} ({reason(exc)}); download it by hand and pass its path, or set "
                f"HF_ENDPOINT to a mirror of the hub"
            ) from None
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


def is_remote(text: str) -> bool:
    """Whether `text` is read through webdataset's openers (`https://...`, `pipe:COMMAND`, `hf://...`)."""
    return "://" in text or text.startswith("pipe:")


_PIPE_NAME = re.compile(r"[^/\s'\"]+\.(?:tar|txt)(?=[\s'\"]|$)")


def remote_parts(url: str) -> tuple[str, str, str]:
    """(where the file is, its name, what follows the name) of a URL or `pipe:` command: a URL's query (a signed
    URL's token) is not part of where nor of the name; a command's name is its last `NAME.tar` (or .txt)."""
    if url.startswith("pipe:"):
        found = _PIPE_NAME.findall(url)
        name = found[-1] if found else url.rstrip("/").rpartition("/")[2]
        head, _, tail = url.rpartition(name)
        return head, name, tail
    parts = urlsplit(url)
    folder, _, name = parts.path.rpartition("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{folder}/", name, query + (f"#{parts.fragment}" if parts.fragment else "")


def sibling_url(url: str, name: str) -> str:
    """The URL (or command) of the file `name` beside the one `url` names, with the same query (a signed URL's
    token) or command around it."""
    head, _, tail = remote_parts(url)
    return f"{head}{name}{tail}"


def fetch_remote(url: str, which: str, check: Callable[[Path], None] | None = None, optional: bool = False) -> Path:
    """A local copy of the file at `url` (a shard, or the classes.txt beside shards), fetched once through
    webdataset's openers (curl for http(s), the command of `pipe:`) into $INCEPTION_V3_CACHE/wds-shards/<hash of
    where it is>/<name> (a signed URL's token is in neither). Replicas and workers on one machine fetch each file
    once (a lock per file). `check(path)` raises UserError for a bad copy: a cached one is fetched again, a fresh
    one refused. `which` says which of several it is, for messages; `optional`: a failure returns the missing
    path."""
    head, name, _ = remote_parts(url)
    target = cache_root() / "wds-shards" / hashlib.sha256(head.encode()).hexdigest()[:24] / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(f".{name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another replica may be fetching it: wait, then use its copy
        if target.is_file() and check is not None:
            try:
                check(target)
            except UserError as exc:
                log.warning("note: the cached copy of %s is bad (%s); fetching it again", url, exc)
                target.unlink()
        if not target.is_file():
            _fetch_remote(url, target, which, check, optional)
    return target


def _fetch_remote(url: str, target: Path, which: str, check: Callable[[Path], None] | None, optional: bool) -> None:
    from webdataset.gopen import gopen

    tmp = target.with_name(f".{target.name}.part-{os.getpid()}")
    desc = f"fetching {target.name} ({which})"
    try:
        with (
            gopen(url, "rb") as stream,
            open(tmp, "wb") as f,
            progress_bar(desc=desc, unit="B", unit_scale=True, disable=optional, leave=False) as bar,
        ):
            while chunk := stream.read(1 << 20):
                f.write(chunk)
                bar.update(len(chunk))
        if tmp.stat().st_size == 0:
            raise OSError("nothing was received")
    except Exception as exc:  # the openers raise several types (exit status of curl or the command, OSError)
        tmp.unlink(missing_ok=True)  # an interrupted or failed fetch leaves nothing behind
        if optional:
            return
        status = re.search(r"exit (\d+)", str(exc))
        why = f"the command exited with status {status.group(1)}" if status else reason(exc)
        if status and status.group(1) == "22":
            why = "the server answered with an HTTP error (curl exit 22: not found?)"
        raise UserError(
            f"cannot fetch shard {url} ({which}): {why}; check the URL, or fetch the shards and give their folder"
        ) from None
    if check is not None:
        try:
            check(tmp)
        except UserError as exc:
            tmp.unlink(missing_ok=True)
            raise UserError(f"what was fetched from {url} ({which}) is bad: {exc}") from None
    os.replace(tmp, target)
