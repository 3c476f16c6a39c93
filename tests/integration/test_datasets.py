"""Datasets: Fashion-MNIST from disk or a (local) download, ImageFolder, class names, and
hostile files in an image folder (a FIFO, a decompression bomb, link loops)."""

from __future__ import annotations

import contextlib
import errno
import functools
import gzip
import http.server
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import massif
from massif.cli import app as cli_app
from massif.datasets import (
    FASHION_FILES,
    IMAGE_EXTENSIONS,
    FashionMNIST,
    ImageFolder,
    resolve_class,
)
from massif.download import download_fashion_mnist
from massif.errors import MassifError
from massif.files import write_atomic
from tests.helpers.cli import MASSIF

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def test_fashion_mnist_loads_from_debian_package():
    data = FashionMNIST("test")
    assert len(data) == 10000
    x = data.load([0, 1])
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    assert len(data.indices_of(data.class_index("Sneaker"))) == 1000


@pytest.mark.parametrize("given,expected", [
    ("Sneaker", 7), ("sneaker", 7), ("7", 7), (7, 7), ("t-shirt/top", 0), ("tshirt top", 0),
    ("ankle_boot", 9),
])
def test_class_names_resolve(given, expected):
    assert FashionMNIST("test").class_index(given) == expected


def test_unknown_class_suggests():
    with pytest.raises(MassifError, match="did you mean: Sandal"):
        resolve_class("Sandle", FashionMNIST("test").class_names)
    with pytest.raises(MassifError, match="out of range"):
        resolve_class("12", ["a", "b"])


@contextlib.contextmanager
def serving(folder: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving ``folder``: its URL, while in the block."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_download_from_a_local_mirror_over_http(tmp_path, monkeypatch):
    """The real download code against a real HTTP server on 127.0.0.1 serving the files. They
    get the mode of any new file (0o666 less the umask), not a temporary file's 0o600."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for pair in FASHION_FILES.values():
        for name in pair:
            shutil.copy(DEBIAN / name, mirror / name)
    with serving(mirror) as url:
        old_umask = os.umask(0o027)
        try:
            dest = download_fashion_mnist(tmp_path / "cache", url)
        finally:
            os.umask(old_umask)
        assert {p.name: p.stat().st_mode & 0o777 for p in dest.iterdir()} == {
            name: 0o640 for pair in FASHION_FILES.values() for name in pair}
        monkeypatch.setenv("MASSIF_FASHION_MNIST", str(dest))
        assert FashionMNIST("test").fingerprint == FashionMNIST("test", root=DEBIAN).fingerprint
        # a corrupt file on the mirror is refused, by its own name, and leaves nothing behind
        (dest / FASHION_FILES["test"][0]).unlink()
        (mirror / FASHION_FILES["test"][0]).write_bytes(gzip.compress(b"not idx"))
        with pytest.raises(MassifError) as err:
            download_fashion_mnist(dest, url)
        assert str(err.value).startswith(
            f"corrupt Fashion-MNIST file {FASHION_FILES['test'][0]} (downloaded from {url}): ")
        assert ".part" not in str(err.value)
        assert sorted(p.name for p in dest.iterdir()) == sorted(
            n for pair in FASHION_FILES.values() for n in pair if n != FASHION_FILES["test"][0])


def test_a_failed_download_removes_only_the_folders_it_made_for_nothing(tmp_path):
    """Nothing fetched: the folders the download made go again; one file fetched: it stays
    (the next run starts from it); a folder that was there before stays in any case."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with serving(mirror) as url:
        with pytest.raises(MassifError, match="could not download .*404"):
            download_fashion_mnist(tmp_path / "new" / "deeper", url)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror"]
        (tmp_path / "there").mkdir()
        with pytest.raises(MassifError, match="could not download"):
            download_fashion_mnist(tmp_path / "there", url)
        assert (tmp_path / "there").is_dir() and not list((tmp_path / "there").iterdir())
        first = FASHION_FILES["train"][0]
        shutil.copy(DEBIAN / first, mirror / first)
        with pytest.raises(MassifError, match="could not download"):
            download_fashion_mnist(tmp_path / "new" / "deeper", url)
        assert [p.name for p in (tmp_path / "new" / "deeper").iterdir()] == [first]


def test_torchvision_weights_download_into_torchs_cache_checked_by_their_hash(
        tmp_path, monkeypatch):
    """``--weights DEFAULT``'s download, from a real HTTP server: the file lands where torch
    looks for it, nothing goes to stdout (the summary's), and a file whose SHA-256 does not
    start with the prefix in its name is refused with no file and no folder left behind."""
    import hashlib
    import types

    from massif.download import torchvision_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    payload = b"some weights"
    good = f"net-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    (mirror / good).write_bytes(payload)
    (mirror / "net-00000000.pth").write_bytes(payload)
    with serving(mirror) as url:
        with pytest.raises(MassifError, match=r"^the torchvision:net weights from .* are damaged"):
            torchvision_weights(types.SimpleNamespace(url=url + "net-00000000.pth"),
                                "torchvision:net")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror"]
        path = torchvision_weights(types.SimpleNamespace(url=url + good), "torchvision:net")
        assert path == tmp_path / "torch" / "hub" / "checkpoints" / good
        assert path.read_bytes() == payload
        with pytest.raises(MassifError, match="could not download the torchvision:net weights"):
            torchvision_weights(types.SimpleNamespace(url=url + "missing.pth"), "torchvision:net")
        assert sorted(p.name for p in path.parent.iterdir()) == [good]
    # once cached, no server is needed
    assert torchvision_weights(types.SimpleNamespace(url=url + good), "torchvision:net") == path


@pytest.mark.parametrize("url", ["notaurl", "ftp//bad", "http://", "http://host:99999/",
                                 "http://[::1/", "mailto:someone@example.org", "http://a b/"])
def test_a_malformed_url_is_refused_in_one_line_before_anything_is_made(tmp_path, url):
    result = CliRunner().invoke(cli_app, ["download-data", "--dest", str(tmp_path / "d" / "e"),
                                          "--url", url])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"massif: error: --url {url!r} is not a URL to download from; give one like "
        "https://host/folder/ (http, https, ftp or file)"]
    assert not result.stdout and not list(tmp_path.iterdir())


def test_a_malformed_url_from_the_environment_is_named_so(tmp_path, monkeypatch):
    monkeypatch.setenv("MASSIF_FASHION_MNIST_URL", "notaurl")
    with pytest.raises(MassifError, match=r"^\$MASSIF_FASHION_MNIST_URL 'notaurl' is not a URL"):
        download_fashion_mnist(tmp_path / "d")
    assert not list(tmp_path.iterdir())


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    import massif.datasets as ds

    monkeypatch.setattr(ds, "DEBIAN_DIR", tmp_path / "no-debian-package")
    monkeypatch.setenv("MASSIF_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("MASSIF_FASHION_MNIST", raising=False)
    with pytest.raises(MassifError, match="dataset-fashion-mnist.*massif download-data"):
        FashionMNIST("test")


def test_imagefolder_resizes_and_converts(tmp_path):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
    Image.new("RGB", (40, 20), (255, 0, 0)).save(tmp_path / "a" / "wide.png")
    Image.new("L", (10, 10), 128).save(tmp_path / "b" / "small.jpg")
    rgb = ImageFolder(tmp_path, image_size=16, channels=3)
    assert rgb.class_names == ["a", "b"]
    x = rgb.load([0, 1])
    assert x.shape == (2, 3, 16, 16)
    assert torch.allclose(x[0, 0], torch.ones(16, 16))  # red stays red after the centre crop
    gray = ImageFolder(tmp_path, image_size=16, channels=1)
    assert gray.load([1]).shape == (1, 1, 16, 16)


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "graph.json"
    write_atomic(path, "old")

    class Boom(str):
        def encode(self, *a):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(path, Boom("new"))
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["graph.json"]


def test_write_atomic_names_the_file_asked_for_and_leaves_no_temporary_file(tmp_path):
    """The rename fails (the target is a folder that is not empty): the error names the
    target, the path the user gave, never the temporary file, which is gone."""
    target = tmp_path / "report.html"
    (target / "inside").mkdir(parents=True)
    with pytest.raises(OSError) as err:
        write_atomic(target, "<html>")
    assert err.value.filename == str(target) and err.value.strerror
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def pymp(tmp: Path) -> list[str]:
    """multiprocessing's temp folders in ``tmp`` (torch's fixed-name caches left aside)."""
    return [p.name for p in tmp.iterdir() if p.name.startswith("pymp-")]


def test_worker_processes_load_the_same_chunks_and_pass_errors_whole(tmp_path, monkeypatch):
    """``load_chunks(..., workers=2)`` (a DataLoader with worker processes) yields what the
    background thread yields, in order, ``None`` for an empty chunk; a bad image in a worker is
    the same one-line error, without the worker's traceback. The workers end with the error or
    an early stop: killed at exit instead, they would leave their temp folders behind."""
    tmp, root = tmp_path / "tmp", tmp_path / "images"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))  # the forked workers' temp folder
    g = torch.Generator().manual_seed(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            arr = (torch.rand(10, 12, 3, generator=g) * 255).to(torch.uint8).numpy()
            Image.fromarray(arr).save(root / c / f"{i}.png")
    data = ImageFolder(root, 8, 3)
    chunks = [[0, 1, 2], [], [3, 4, 5, 6, 7], [11], [8, 9]]
    alone = list(data.load_chunks(chunks, workers=0))
    pooled = list(data.load_chunks(chunks, workers=2))
    assert [t is None for t in pooled] == [False, True, False, False, False]
    for a, b in zip(alone, pooled):
        assert (a is None and b is None) or torch.equal(a, b)
    assert torch.equal(pooled[3], data.load([11]))
    running = data.load_chunks(chunks, workers=2)
    next(running)
    assert pymp(tmp)  # a worker's, while it lives
    running.close()
    assert not pymp(tmp)
    (root / "b" / "5.png").write_bytes(b"not a png")
    with pytest.raises(MassifError) as err:
        list(data.load_chunks(chunks, workers=2))
    assert str(err.value).startswith("cannot read image") and "5.png" in str(err.value)
    assert "Traceback" not in str(err.value)
    assert not pymp(tmp)  # though the traceback keeps the generator's frame
    # any other error of a worker's load comes back whole too (errno and file kept)
    with pytest.raises(OSError) as err:
        list(FailingDisk(root, 8, 3).load_chunks(chunks, workers=2))
    assert (err.value.errno, err.value.filename) == (errno.EIO, "disk")
    assert not pymp(tmp)


class FailingDisk(ImageFolder):
    """A folder whose disk fails under image 11 (a user's dataset may raise anything)."""

    def load(self, indices):
        if 11 in indices:
            raise OSError(errno.EIO, "Input/output error", "disk")
        return super().load(indices)


def test_a_folder_loads_each_chunk_in_a_thread_that_ends_with_it(tmp_path):
    """While the caller computes on a chunk, the thread that loaded the next one has ended, and
    its OpenMP workers with it (``massif.threads``: idle teams slow the caller's operators)."""
    g = torch.Generator().manual_seed(0)
    (tmp_path / "a").mkdir()
    for i in range(12):
        arr = (torch.rand(64, 64, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(tmp_path / "a" / f"{i}.png")
    data = ImageFolder(tmp_path, 64, 3)  # a chunk of 4 is 49,152 values: operators go parallel

    def openmp_workers() -> int:
        return len(os.listdir("/proc/self/task")) - threading.active_count()

    torch.ones(1 << 16).add_(1)  # this thread's own team, if it has none yet
    idle = openmp_workers()
    seen = []
    for images in data.load_chunks([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]):
        time.sleep(1.0)  # "compute": the next chunk is loaded meanwhile, its thread gone
        seen.append(openmp_workers())
        assert images is not None and images.shape == (4, 3, 64, 64)
    assert max(seen) <= idle, seen


# ----------------------------------------------------------------------------- hostile files

TINY_MODEL = '''
import torch
from torch import nn

def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3))
'''


def image_tree(root: Path, classes: tuple[str, ...] = ("circle", "square", "stripe"),
               n: int = 3) -> Path:
    """``root/<class>/<i>.png``: ``n`` small grayscale images per class."""
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("L", (8, 8), 40 * c + 10 * i).save(root / name / f"{i}.png")
    return root


def analyze(tmp_path: Path, data: Path, out: Path, timeout: float = 120
            ) -> subprocess.CompletedProcess:
    """The real ``massif analyze`` on a tiny model file, ``circle`` toward ``square``."""
    model = tmp_path / "tiny.py"
    model.write_text(TINY_MODEL)
    return subprocess.run(
        [MASSIF, "analyze", "--model", f"{model}:build", "--data", str(data), "--image-size",
         "8", "--layers", "1", "--benign", "circle", "--target", "square", "--steps", "2",
         "--no-pictures", "--device", "cpu", "--out", str(out)],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The one ``massif: error:`` line of a run refused with exit status 2 (the progress bars
    aside, stderr holds no traceback and no warning)."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("massif: error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` × ``height`` grayscale pixels and holds none."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_analyze_skips_a_fifo_named_like_an_image(tmp_path):
    """A FIFO ``x.png`` in a class folder is no image: skipped, the run ends (it used to wait
    forever on opening it)."""
    data = image_tree(tmp_path / "data")
    os.mkfifo(data / "circle" / "x.png")
    proc = analyze(tmp_path, data, tmp_path / "out", timeout=60)
    assert proc.returncode == 0, proc.stderr
    graph = json.loads((tmp_path / "out" / "graph.json").read_text())
    assert graph["benign"]["n_images"] == 3


def test_only_regular_files_are_images_and_none_is_opened_blocking(tmp_path, monkeypatch):
    """A FIFO or a socket named like an image is not listed; an image replaced by a FIFO
    after it was listed is one clear error at once, not an ``open`` that waits for a writer."""
    data = image_tree(tmp_path / "data", ("a", "b"), n=2)
    os.mkfifo(data / "a" / "x.png")
    monkeypatch.chdir(data / "b")  # (a socket's path must be short: bind a relative one)
    with contextlib.closing(socket.socket(socket.AF_UNIX)) as sock:
        sock.bind("y.png")
        folder = ImageFolder(data, 8, 1)
    assert [str(p.relative_to(data)) for p in folder.paths] == [
        "a/0.png", "a/1.png", "b/0.png", "b/1.png"]
    (data / "a" / "1.png").unlink()
    os.mkfifo(data / "a" / "1.png")
    errors: list[BaseException] = []
    loading = threading.Thread(target=lambda: errors.append(
        pytest.raises(MassifError, folder.load, [0, 1]).value), daemon=True)
    loading.start()
    loading.join(30)
    if loading.is_alive():  # blocked in open(): a writer lets it go, then fail
        os.close(os.open(data / "a" / "1.png", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("loading an image that became a FIFO waited for a writer")
    assert str(errors[0]) == (f"cannot read image {data / 'a' / '1.png'}: not a regular file "
                              "(a FIFO, socket or device)")


@pytest.mark.parametrize("side", [30000, 12000])
def test_a_decompression_bomb_is_one_line_naming_the_file(tmp_path, side):
    """Over twice Pillow's ``MAX_IMAGE_PIXELS`` it refuses the image, over it it warns: both
    are the same one line, which says what to do; the --out folder made for the run goes."""
    data = image_tree(tmp_path / "data")
    bomb = data / "circle" / "bomb.png"
    bomb.write_bytes(png_header(side, side))
    line = one_error_line(analyze(tmp_path, data, tmp_path / "new" / "out"))
    assert line == (f"massif: error: image {bomb} is over Pillow's limit of 89,478,485 pixels "
                    "(a possible decompression bomb); no classifier takes images that large: "
                    "shrink it (this model takes 8×8) or move it out of the data folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "tiny.py"]


def test_a_failed_analyze_removes_only_the_out_folders_it_made(tmp_path):
    """A run that fails on a bad image leaves no empty --out it made (nor the parents it made
    for it); a folder that was there before stays, empty or not."""
    data = image_tree(tmp_path / "data")
    (data / "square" / "9.png").write_bytes(b"not a png")
    line = one_error_line(analyze(tmp_path, data, tmp_path / "new" / "out"))
    assert line.startswith(f"massif: error: cannot read image {data / 'square' / '9.png'}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "tiny.py"]
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    for folder in ("empty", "full"):
        one_error_line(analyze(tmp_path, data, tmp_path / folder))
    assert not list((tmp_path / "empty").iterdir())
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["notes.txt"]


def test_links_never_lead_out_of_a_class_and_each_file_counts_once(tmp_path):
    """``self -> .`` and ``up -> ..`` loops add nothing, a link out of the class folder is not
    followed, a file reached by several names (a link, a hard link, a linked folder) counts
    once under its own name; a class whose only images are links out of it says so."""
    data = image_tree(tmp_path / "data", ("Sandal", "Sneaker"), n=5)
    sneaker, sandal = data / "Sneaker", data / "Sandal"
    (sneaker / "sub").mkdir()
    Image.new("L", (8, 8)).save(sneaker / "sub" / "5.png")
    os.symlink(".", sneaker / "self")
    os.symlink("..", sandal / "up")
    os.symlink("0.png", sneaker / "again.png")
    os.link(sneaker / "1.png", sneaker / "hard.png")
    os.symlink("sub", sneaker / "inner")
    os.symlink("../Sneaker/0.png", sandal / "borrowed.png")
    os.symlink("b.png", sandal / "a.png")  # a loop of file links, which lead nowhere
    os.symlink("a.png", sandal / "b.png")
    folder = massif.load_dataset(data, 8, 1)
    assert [str(p.relative_to(data)) for p in folder.paths] == [
        *(f"Sandal/{i}.png" for i in range(5)), *(f"Sneaker/{i}.png" for i in range(5)),
        "Sneaker/sub/5.png"]
    assert folder.labels.tolist() == [0] * 5 + [1] * 6
    (data / "Boot").mkdir()
    os.symlink("../Sandal/0.png", data / "Boot" / "x.png")
    os.symlink(sandal, data / "Boot" / "more")
    with pytest.raises(MassifError, match=r"^class folder .*/Boot holds no images \(2 link\(s\) "
                       r"leading out of it not followed\)$"):
        massif.load_dataset(data, 8, 1)


def test_a_tree_without_links_lists_as_torchvision_did(tmp_path):
    """The same images in the same order as torchvision's ``make_dataset``, which listed them
    before (so fingerprints and samples of existing folders do not change)."""
    from torchvision.datasets.folder import make_dataset

    data = image_tree(tmp_path / "data", ("b", "a"), n=2)
    for sub in ("a/x-y", "a/x", "a/x/z", "a/X", "b/.hidden"):
        (data / sub).mkdir()
        Image.new("L", (8, 8)).save(data / sub / "Img.PNG")
    (data / "a" / "notes.txt").write_text("not an image")
    theirs = make_dataset(str(data), {"a": 0, "b": 1}, extensions=IMAGE_EXTENSIONS)
    ours = ImageFolder(data, 8, 1)
    assert [(str(p), int(label)) for p, label in zip(ours.paths, ours.labels)] == theirs
