"""Weights by name, URL and path, downloaded from a real HTTP server on 127.0.0.1 that the tests start:
a good file, a corrupt one, a connection dropped mid-file, a second load from the cache with the
server gone, named weights through a mirror and through the Hugging Face hub client."""

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from inception_v3 import create_model, inception_v3
from inception_v3.errors import UserError
from inception_v3.interop.registry import imagenet_categories
from inception_v3.weights import load_pretrained

ROOT = Path(__file__).resolve().parents[1]
TINY = {"width_multiplier": 0.0625, "min_depth": 4, "num_classes": 5}


class Files(http.server.ThreadingHTTPServer):
    """Serves `routes`: path -> (bytes, headers, mode); mode "drop" sends half the body and closes."""

    routes: dict[str, tuple[bytes, dict[str, str], str]]
    hits: list[str]


class Handler(http.server.BaseHTTPRequestHandler):
    server: Files

    def _reply(self, body: bool) -> None:
        self.server.hits.append(f"{self.command} {self.path}")
        if self.path not in self.server.routes:
            self.send_error(404)
            return
        data, headers, mode = self.server.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(data[: len(data) // 2] if mode == "drop" else data)
            if mode == "drop":
                self.wfile.flush()
                self.close_connection = True

    def do_GET(self) -> None:
        self._reply(body=True)

    def do_HEAD(self) -> None:
        self._reply(body=False)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[Files]:
    httpd = Files(("127.0.0.1", 0), Handler)
    httpd.routes, httpd.hits = {}, []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(server: Files, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def tiny_safetensors() -> tuple[bytes, torch.nn.Module]:
    model = create_model("inception_v3_79", **TINY).eval()
    path = Path(os.environ["TORCH_HOME"]).parent / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path.read_bytes(), model


def cached(env_var: str) -> list[str]:
    root = Path(os.environ[env_var])
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_url_good_file_then_cache_without_the_server(server: Files) -> None:
    data, model = tiny_safetensors()
    digest = hashlib.sha256(data).hexdigest()
    server.routes[f"/w/tiny-{digest[:10]}.safetensors"] = (data, {}, "ok")
    source = url(server, f"/w/tiny-{digest[:10]}.safetensors")
    loaded, report = load_pretrained(source, preset="inception_v3_79", **TINY)
    x = torch.randn(2, 3, 79, 79)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), model(x))
    assert cached("TORCH_HOME") == [f"tiny-{digest[:10]}.safetensors"] and report.weights == source
    server.routes.clear()  # the server no longer has it: the second load comes from the cache
    again = create_model("inception_v3_79", weights=source, **TINY)
    assert torch.equal(again.state_dict()["fc.weight"], model.state_dict()["fc.weight"])
    assert server.hits == [f"GET /w/tiny-{digest[:10]}.safetensors"]  # one request in all


def test_corrupt_and_truncated_downloads_are_refused_and_not_cached(server: Files) -> None:
    data, _ = tiny_safetensors()
    digest = hashlib.sha256(data).hexdigest()
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0xFF
    server.routes[f"/w/bad-{digest[:8]}.safetensors"] = (bytes(damaged), {}, "ok")
    with pytest.raises(UserError, match="damaged or not the published file"):
        load_pretrained(url(server, f"/w/bad-{digest[:8]}.safetensors"), preset="inception_v3_79", **TINY)
    server.routes[f"/w/cut-{digest[:8]}.safetensors"] = (data, {}, "drop")
    with pytest.raises(UserError, match="damaged or not the published file"):
        load_pretrained(url(server, f"/w/cut-{digest[:8]}.safetensors"), preset="inception_v3_79", **TINY)
    server.routes["/w/nohash.safetensors"] = (data, {}, "drop")  # no hash in the name: the parse check catches it
    with pytest.raises(UserError, match="incomplete or not a weights file"):
        load_pretrained(url(server, "/w/nohash.safetensors"), preset="inception_v3_79", **TINY)
    assert cached("TORCH_HOME") == []  # nothing half-written or wrong stays in the cache


def test_unreachable_url_and_unknown_name_are_one_line(server: Files) -> None:
    with pytest.raises(UserError, match=r"cannot download http://127.0.0.1:\d+/w/none-0123abcd.pth .*by hand to"):
        load_pretrained(url(server, "/w/none-0123abcd.pth"))
    with pytest.raises(UserError, match=r"unknown weights 'IMAGENET1K_V7'.*torchvision/IMAGENET1K_V1"):
        inception_v3(weights="IMAGENET1K_V7")
    assert cached("TORCH_HOME") == []


def error_lines(stderr: str) -> list[str]:
    """The lines that report an error (a download's progress bar may come before them)."""
    return [line for line in stderr.splitlines() if "error" in line.lower() or "Traceback" in line]


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inception_v3.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env, "PYTHONWARNINGS": "ignore"}, cwd=cwd, timeout=600)  # fmt: skip


def test_named_weights_through_a_mirror_keep_their_published_hash(server: Files, tmp_path: Path) -> None:
    # torchvision's file name carries its sha256 prefix; a file that is not the published one is refused
    data, _ = tiny_safetensors()
    server.routes["/mirror/inception_v3_google-0cc3c7bd.pth"] = (data, {}, "ok")
    done = run_cli(["convert", "IMAGENET1K_V1", str(tmp_path / "out")], {"INCEPTION_V3_MIRROR": url(server, "/mirror")},
                   tmp_path)  # fmt: skip
    assert done.returncode == 2 and "damaged or not the published file" in done.stderr
    assert len(error_lines(done.stderr)) == 1 and "Traceback" not in done.stderr
    assert server.hits == ["GET /mirror/inception_v3_google-0cc3c7bd.pth"]
    assert cached("TORCH_HOME") == [] and not (tmp_path / "out").exists()


def hub_routes(server: Files, repo: str, data: bytes, served: bytes | None = None) -> None:
    """The Hugging Face hub's resolve endpoint for one file, as the hub client expects it."""
    sha = hashlib.sha256(data).hexdigest()
    headers = {"X-Repo-Commit": "a" * 40, "ETag": f'"{"b" * 40}"', "X-Linked-Etag": f'"{sha}"',
               "X-Linked-Size": str(len(data))}  # fmt: skip
    server.routes[f"/{repo}/resolve/main/model.safetensors"] = (served or data, headers, "ok")


def test_hub_weights_by_name_then_offline_and_a_corrupt_file(server: Files, tmp_path: Path) -> None:
    # a full-size Inception-v3 in timm's layout, served as timm/inception_v3.tf_in1k by a local hub mirror
    model = inception_v3().eval()
    (tmp_path / "w").mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w" / "m.safetensors"))
    data = (tmp_path / "w" / "m.safetensors").read_bytes()
    hub_routes(server, "timm/inception_v3.tf_in1k", data)
    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "red.png")
    env = {"HF_ENDPOINT": url(server, "")}
    first = run_cli(["predict", "timm/inception_v3.tf_in1k", str(tmp_path / "red.png"), "--json", "--top-k", "2"],
                    env, tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    top = json.loads(first.stdout)[0]["top"]
    assert len(top) == 2 and all(t["label"] in imagenet_categories() for t in top)  # ImageNet names, not indices
    assert "weights: timm/inception_v3.tf_in1k" in first.stderr and "bicubic" in first.stderr
    blobs = [p for p in Path(os.environ["HF_HOME"]).rglob("blobs/*") if p.is_file()]
    assert [b.name for b in blobs] == [hashlib.sha256(data).hexdigest()]
    # the server is gone (routes cleared): the cached file is used without a request
    server.routes.clear()
    hits = len(server.hits)
    again = run_cli(["predict", "tf_in1k", str(tmp_path / "red.png"), "--json", "--top-k", "2"], env, tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)[0]["top"] == top and len(server.hits) == hits
    # another hub file whose bytes do not match the hub's sha256: refused, and not left in the cache
    damaged = bytearray(data)
    damaged[1000] ^= 0xFF
    hub_routes(server, "timm/inception_v3.gluon_in1k", data, served=bytes(damaged))
    bad = run_cli(["predict", "gluon_in1k", str(tmp_path / "red.png")], env, tmp_path)
    assert bad.returncode == 2 and "damaged or not the published file" in bad.stderr, bad.stderr[-2000:]
    assert len(error_lines(bad.stderr)) == 1
    assert [p.name for p in Path(os.environ["HF_HOME"]).rglob("blobs/*") if p.is_file()] == [blobs[0].name]
    # neither cached nor on the server: one line naming the URL
    offline = run_cli(["predict", "tv_in1k", str(tmp_path / "red.png")], env, tmp_path)
    assert offline.returncode == 2 and "cannot download" in offline.stderr and "inception_v3.tv_in1k" in offline.stderr
    assert len(error_lines(offline.stderr)) == 1


def test_torch_hub_loads_by_url(server: Files) -> None:
    data, model = tiny_safetensors()
    digest = hashlib.sha256(data).hexdigest()
    server.routes[f"/w/tiny-{digest[:8]}.safetensors"] = (data, {}, "ok")
    loaded = torch.hub.load(str(ROOT), "inception_v3", source="local", preset="inception_v3_79",
                            weights=url(server, f"/w/tiny-{digest[:8]}.safetensors"), **TINY)  # fmt: skip
    assert torch.equal(loaded.state_dict()["fc.weight"], model.state_dict()["fc.weight"])
