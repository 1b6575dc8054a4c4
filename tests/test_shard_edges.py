"""Shards and datasets at the edges a user at scale meets, written with webdataset's own `TarWriter` and
`datasets`' own writers: every sample read as webdataset reads it, labels that mean what they say, nothing stale,
and bad input refused in one line. Each case gave a wrong result without a word before (main at 6351743)."""

import contextlib
import functools
import http.server
import io
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inception_v3.cli import main
from inception_v3.data.formats import open_source
from inception_v3.data.image_io import Encoded, decode_stored
from inception_v3.data.shards import expand_braces
from inception_v3.errors import UserError
from inception_v3.utils.io import cache_root
from inception_v3.weights import save_pretrained


def image(value: int, fmt: str = "png") -> bytes:
    """A 12 x 10 gray image of one value, encoded."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((10, 12), value, dtype=np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def write(path: Path, samples: list[dict[str, object]]) -> Path:
    import webdataset

    path.parent.mkdir(parents=True, exist_ok=True)
    with webdataset.TarWriter(str(path)) as sink:
        for sample in samples:
            sink.write(sample)
    return path


def keys_and_pixels(source: object) -> list[tuple[str, int]]:
    """(key, pixel value) of every sample of a source, in order."""
    out = []
    for i in range(len(source)):  # type: ignore[arg-type]
        key = source.item_name(i).rpartition(":")[2]  # type: ignore[attr-defined]
        out.append((key, int(decode_stored(source.stored(i)).flatten()[0])))  # type: ignore[attr-defined]
    return out


def test_samples_are_grouped_as_webdataset_groups_them(tmp_path: Path) -> None:
    """Repeated, interleaved and non-ASCII keys, a .json of metadata beside a .cls, Pillow's other formats: the
    same samples, in the same order, with the same labels as webdataset's own reader."""
    import webdataset

    shard = write(
        tmp_path / "s-000000.tar",
        [
            {"__key__": "001", "png": image(10), "cls": 1},
            {"__key__": "002", "png": image(20), "cls": 2, "json": {"photographer": "x"}},  # metadata, not a label
            {"__key__": "001", "png": image(30), "cls": 3},  # the key again, not adjacent: another sample
            {"__key__": "café/ünï", "bmp": image(40, "bmp"), "cls": 4},
            {"__key__": "d/x", "tiff": image(50, "tiff"), "json": {"label": 5}},
            {"__key__": "g", "gif": image(60, "gif")},  # no label
        ],
    )
    theirs = [
        (s["__key__"], next(v for k, v in s.items() if k in ("png", "bmp", "tiff", "gif")))
        for s in webdataset.WebDataset(str(shard), shardshuffle=False)
    ]
    source = open_source(f"wds:{shard}")
    ours = [(source.item_name(i).rpartition(":")[2], source.stored(i).data) for i in range(len(source))]  # type: ignore[union-attr]
    assert ours == theirs and len(ours) == 6  # the same samples, keys and image bytes, in the same order
    assert [v for _, v in keys_and_pixels(source)] == [10, 20, 30, 40, 50, 60]
    assert source.labels.tolist() == [1, 2, 3, 4, 5, -1]  # type: ignore[union-attr]
    # two images in one sample: one line naming shard and key, unless image_column picks one
    two = write(tmp_path / "two-000000.tar", [{"__key__": "k", "jpg": image(1, "jpeg"), "png": image(2), "cls": 0}])
    with pytest.raises(UserError, match=r"sample k in shard .*two-000000.tar has 2 images \(jpg, png\)"):
        open_source(f"wds:{two}")
    assert keys_and_pixels(open_source(f"wds:{two}", columns=("png", "label"))) == [("k", 2)]
    # two labels that disagree: refused the same way, unless label_column picks one
    labels = write(tmp_path / "lab-000000.tar", [{"__key__": "k", "png": image(1), "cls": 0, "json": {"label": 3}}])
    with pytest.raises(UserError, match="has two labels"):
        open_source(f"wds:{labels}")
    assert open_source(f"wds:{labels}", columns=("image", "json")).labels.tolist() == [3]  # type: ignore[union-attr]
    assert expand_braces("x-{a,{b,c}}") == ["x-a", "x-b", "x-c"]  # nested braces, as braceexpand


def test_unlabeled_splits_are_refused_where_labels_are_needed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A test split stored with label -1 (as imagenet-1k's on the hub), as shards and as an HF dataset: train and
    evaluate refuse it at start in one line naming it; predict and features read it."""
    import datasets

    samples = [{"__key__": f"{i:03d}", "png": image(10 * i), "cls": -1} for i in range(4)]
    write(tmp_path / "val-000000.tar", samples)
    write(tmp_path / "train-000000.tar", [{**s, "cls": i % 2} for i, s in enumerate(samples)])
    (tmp_path / "classes.txt").write_text("a\nb\n")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    rows = {"image": [{"bytes": image(10 * i), "path": None} for i in range(4)], "label": [0, 1, 0, 1]}
    test = {"image": rows["image"], "label": [-1] * 4}
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(rows, features=features),
            "test": datasets.Dataset.from_dict(test, features=features),
        }
    ).save_to_disk(str(tmp_path / "hf"))
    save_pretrained(
        __import__("inception_v3").create_model("inception_v3_79", width_multiplier=0.0625, min_depth=4, num_classes=2),
        tmp_path / "w",
        classes=["a", "b"],
    )
    train = [
        "train",
        "--recipe",
        "fashion-mnist",
        "--width-multiplier",
        "0.0625",
        "--min-depth",
        "4",
        "--workers",
        "0",
        "--batch-size",
        "2",
        "--out-dir",
        str(tmp_path / "runs"),
    ]
    cases = [
        (
            [
                *train,
                "--dataset",
                "wds",
                "--data-dir",
                str(tmp_path),
                "--train-split",
                "train-000000.tar",
                "--val-split",
                "val-000000.tar",
            ],
            "val-000000.tar has no labels",
        ),
        (
            [*train, "--data-dir", f"hf:{tmp_path / 'hf'}", "--val-split", "test"],
            "hf:" + str(tmp_path / "hf") + ":test has no labels",
        ),
        (["evaluate", str(tmp_path / "w"), "--data-dir", f"wds:{tmp_path}/val-000000.tar"], "has no labels"),
        (["evaluate", str(tmp_path / "w"), "--data-dir", f"hf:{tmp_path / 'hf'}:test"], "has no labels"),
    ]
    capsys.readouterr()
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (args, err)
    assert not (tmp_path / "runs").exists()  # refused at start: nothing trained, nothing written
    for spec in (f"wds:{tmp_path}/val-000000.tar", f"hf:{tmp_path / 'hf'}:test"):
        assert main(["predict", str(tmp_path / "w"), spec, "--json", "--device", "cpu"]) == 0
        assert len(json.loads(capsys.readouterr().out)) == 4
        out = tmp_path / f"f{len(spec)}.npz"
        assert main(["features", spec, "--weights", str(tmp_path / "w"), "--output", str(out), "--workers", "0"]) == 0
        capsys.readouterr()
        with np.load(out) as f:
            assert f["features"].shape[0] == 4 and "labels" not in f  # no labels to save


def test_nothing_stale(tmp_path: Path) -> None:
    """`shards --overwrite` leaves exactly the shards it wrote; an index follows a shard rewritten at the same size
    and modification time; class names from a dict-shaped classes.json."""
    folder = tmp_path / "folder"
    for split in ("train", "val"):
        for i in range(6):
            (folder / split / "c").mkdir(parents=True, exist_ok=True)
            (folder / split / "c" / f"{i}.png").write_bytes(image(i))
    out = tmp_path / "out"
    assert main(["shards", str(folder), str(out), "--max-count", "2"]) == 0
    (tmp_path / "out" / "notes.txt").write_text("mine")  # a file of the user's: kept
    assert main(["shards", str(folder), str(out), "--max-count", "6", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "classes.txt",
        "notes.txt",
        "shards.json",
        "train-000000.tar",
        "val-000000.tar",
    ]
    with pytest.raises(UserError, match=r"is missing \(2 of the 3 shards"):
        open_source(f"wds:{out}/train-{{000000..000002}}.tar")
    (out / "val-000001.tar").write_bytes((out / "val-000000.tar").read_bytes())  # not written by `shards`
    assert main(["shards", str(folder), str(out), "--overwrite"]) == 2
    assert (out / "val-000001.tar").is_file() and (out / "train-000000.tar").is_file()  # nothing removed
    # a shard replaced by another of the same size and modification time (cp -p, rsync -t, unpacking)
    a = write(tmp_path / "x" / "s-000000.tar", [{"__key__": f"{i}", "png": image(i), "cls": 0} for i in range(3)])
    assert open_source(f"wds:{a}").labels.tolist() == [0, 0, 0]  # type: ignore[union-attr]
    st = a.stat()
    b = write(tmp_path / "y" / "s-000000.tar", [{"__key__": f"{i}", "png": image(i), "cls": 1} for i in range(3)])
    assert b.stat().st_size == st.st_size
    os.replace(b, a)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert open_source(f"wds:{a}").labels.tolist() == [1, 1, 1]  # type: ignore[union-attr]
    # a manifest names only what `shards` writes: a name outside OUT is never removed; an interrupted run's
    # shards are its own
    (tmp_path / "keep.txt").write_text("the user's")
    (out / "shards.json").write_text(json.dumps({"written": ["../keep.txt", "train-000000.tar", "val-000000.tar"]}))
    (out / "val-000001.tar").unlink()
    assert main(["shards", str(folder), str(out), "--overwrite"]) == 0 and (tmp_path / "keep.txt").is_file()
    (out / "shards.json").write_text(json.dumps({"in_progress": True, "written": []}))
    (out / "train-000007.tar").write_bytes(b"")  # what an interrupted run left
    assert main(["shards", str(folder), str(out), "--overwrite"]) == 0 and not (out / "train-000007.tar").exists()
    (a.parent / "classes.json").write_text(json.dumps({"0": ["n01440764", "tench"], "1": ["n01443537", "goldfish"]}))
    assert open_source(f"wds:{a}").classes == ["tench", "goldfish"]  # type: ignore[attr-defined]


@contextlib.contextmanager
def recorded(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 serving `folder`; yields its URL and the request paths it saw."""
    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            seen.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_index_is_built_once_per_machine_and_versioned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two readers at once (two replicas on one machine): one builds each shard's index, the other waits for it
    and maps the same file; another version of the indexing rules is another index."""
    import threading

    import inception_v3.data.shards as shards

    paths = [
        write(tmp_path / f"s-{k:06d}.tar", [{"__key__": f"{k}-{i}", "png": image(i), "cls": i % 2} for i in range(5)])
        for k in range(3)
    ]
    built: list[Path] = []
    real = shards.index_shard
    monkeypatch.setattr(shards, "index_shard", lambda path, columns: built.append(path) or real(path, columns))
    sources: list[object] = []
    threads = [
        threading.Thread(target=lambda: sources.append(open_source(f"wds:{tmp_path}/s-{{000000..000002}}.tar")))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(built) == paths and len(sources) == 2  # each shard indexed once
    assert [len(s) for s in sources] == [15, 15] and sources[0].rows.filename == sources[1].rows.filename  # type: ignore[attr-defined]
    key = shards._shard_key(paths[0], ("image", "label"))
    monkeypatch.setattr(shards, "INDEX_VERSION", shards.INDEX_VERSION + 1)
    assert shards._shard_key(paths[0], ("image", "label")) != key


def test_fetched_shards_signed_urls_compressed_and_unwritable_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    shard = write(
        tmp_path / "srv" / "s-000000.tar", [{"__key__": f"{i}", "png": image(i), "cls": 0} for i in range(20)]
    )
    (tmp_path / "srv" / "classes.txt").write_text("a\n")
    # a signed URL: the token reaches the server (for the shard and for classes.txt), not the cache's file names
    with recorded(tmp_path / "srv") as (url, seen):
        source = open_source(f"wds:{url}/s-000000.tar?token=abc123")
    assert len(source) == 20 and source.classes == ["a"]  # type: ignore[attr-defined]
    assert "/s-000000.tar?token=abc123" in seen and "/classes.txt?token=abc123" in seen
    cached = list((cache_root() / "wds-shards").rglob("*.tar"))
    assert [p.name for p in cached] == ["s-000000.tar"]
    # a command that exits 0 before the whole shard arrived: refused, and nothing of it stays in the cache
    cut = f"wds:pipe:head -c 3000 {shard}"
    with pytest.raises(UserError, match=r"is bad: shard .* is truncated"):
        open_source(cut)
    assert (
        not list((cache_root() / "wds-shards").rglob("*.part*"))
        and len(list((cache_root() / "wds-shards").rglob("*.tar"))) == 1
    )
    # a cached copy damaged later is fetched again
    cached[0].write_bytes(cached[0].read_bytes()[:3000])
    with recorded(tmp_path / "srv") as (url, _):
        assert len(open_source(f"wds:{url}/s-000000.tar?token=abc123")) == 20
    # compressed shards: one line that says what to do
    import gzip

    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "s-000000.tar.gz").write_bytes(gzip.compress(shard.read_bytes()))
    with pytest.raises(UserError, match=r"compressed shards are not supported.*write them uncompressed"):
        open_source(f"wds:{tmp_path}/z/s-000000.tar.gz")
    # an unwritable cache: the index in memory, with one note
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("INCEPTION_V3_CACHE", str(tmp_path / "file" / "cache"))
    caplog.clear()
    assert len(open_source(f"wds:{shard}")) == 20
    assert [r.message for r in caplog.records if "is not writable" in r.message and "in memory" in r.message]
    assert isinstance(open_source(f"wds:{shard}").stored(3), Encoded)


def test_folders_follow_links_and_skip_macos_metadata(tmp_path: Path) -> None:
    """As torchvision's ImageFolder: a class folder that is a symbolic link is read; macOS's `._x` files and
    `__MACOSX/` are not images; a Dataset saved alone is read by its path, its one split by default."""
    import datasets

    (tmp_path / "real" / "cat").mkdir(parents=True)
    (tmp_path / "tree" / "dog").mkdir(parents=True)
    (tmp_path / "real" / "cat" / "0.png").write_bytes(image(1))
    (tmp_path / "tree" / "dog" / "0.png").write_bytes(image(2))
    (tmp_path / "tree" / "dog" / "._0.png").write_bytes(b"AppleDouble")
    (tmp_path / "tree" / "cat").symlink_to(tmp_path / "real" / "cat")
    source = open_source(str(tmp_path / "tree"))
    assert source.classes == ["cat", "dog"] and len(source) == 2  # type: ignore[attr-defined]
    one = datasets.Dataset.from_dict(
        {"image": [{"bytes": image(3), "path": None}], "label": [0]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}),
    )
    one.save_to_disk(str(tmp_path / "one"))
    assert len(open_source(str(tmp_path / "one"))) == 1
