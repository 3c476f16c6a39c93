"""Datasets: labelled images in [0, 1], loaded a batch at a time.

Two kinds are built in:

* ``fashion-mnist`` (test split; ``fashion-mnist:train`` for training). The IDX files are looked
  up in ``$MASSIF_FASHION_MNIST``, Debian's ``/usr/share/datasets/fashion-mnist/`` (package
  ``dataset-fashion-mnist``) and ``~/.cache/massif/fashion-mnist/``; ``massif download-data``
  fetches them into the cache from the official source when asked (and only then).
* any ``ImageFolder`` tree (``root/<class name>/<image>``): class names are the sub-folder names,
  sorted; images are converted to the model's channels and resized (shorter side, then centre
  crop) to its input size. A class's images are the regular files with an image extension
  anywhere under its folder, each file once (a FIFO, socket or device is skipped, and so is
  a link that leads out of the class folder, which keeps a link loop from counting images
  again and one class from taking in another's). An image over Pillow's
  ``Image.MAX_IMAGE_PIXELS`` (a possible decompression bomb) is an error naming the file.

Every dataset answers ``class_names``, ``labels`` (one int per image) and ``load(indices)``, which
returns a float tensor ``[n, C, H, W]`` in [0, 1]. Nothing is read until it is needed, so memory
stays flat however large the dataset is (Fashion-MNIST, 30 MB, is simply kept in memory).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import threading
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from .errors import MassifError, did_you_mean, is_index, short
from .threads import in_background

FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


class Dataset:
    """Base class: ``name``, ``fingerprint``, ``class_names``, ``labels`` and ``load``."""

    name: str
    fingerprint: str
    class_names: list[str]
    labels: torch.Tensor  # [N] int64
    in_memory: bool = False  # load() is a copy from memory: nothing to overlap with compute

    def load(self, indices: Sequence[int]) -> torch.Tensor:  # [n, C, H, W] in [0, 1]
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.labels)

    def class_index(self, name_or_index: str | int) -> int:
        """Resolve a class given by name (case-insensitive) or by its index."""
        return resolve_class(name_or_index, self.class_names)

    def indices_of(self, class_index: int) -> list[int]:
        return torch.nonzero(self.labels == class_index).flatten().tolist()

    def batches(
        self, indices: Sequence[int], batch_size: int, workers: int = 0
    ) -> Iterator[tuple[torch.Tensor, list[int]]]:
        """Yield ``(images, indices)`` a batch at a time, loading the next batches meanwhile
        (see ``load_chunks``)."""
        chunks = [list(indices[i : i + batch_size]) for i in range(0, len(indices), batch_size)]
        yield from zip(self.load_chunks(chunks, workers), chunks)  # type: ignore[misc]

    def load_chunks(self, chunks: Sequence[Sequence[int]], workers: int = 0
                    ) -> Iterator[torch.Tensor | None]:
        """Each chunk's images in order (``None`` for an empty chunk), the next ones loading
        while the caller computes: in a background thread per chunk (``workers=0``), or in
        ``workers`` processes of a torch ``DataLoader`` (each loads whole chunks; JPEG decoding
        then runs beside the model instead of between its batches). A dataset held in memory
        loads in the caller's thread: a copy is quicker than the contention a second thread's
        tensor work brings (measured with one long-lived loader thread: the bundled model's
        neuron pass took 25% longer with it)."""
        todo = [list(c) for c in chunks if len(c)]
        loader = None
        if self.in_memory and workers == 0:
            loaded: Iterator[torch.Tensor] = (self.load(c) for c in todo)
        elif workers > 0 and len(todo) > 1:
            from torch.utils.data import DataLoader

            loader = DataLoader(_Chunks(self, todo), batch_size=None, shuffle=False,
                                num_workers=min(workers, len(todo)), prefetch_factor=2)
            loaded = iter(loader)
        else:
            loaded = _prefetched(self, todo)
        try:
            for c in chunks:
                try:
                    images = next(loaded) if len(c) else None
                except Exception as e:  # a DataLoader's own (a worker died): its traceback
                    if loader is None:  # would keep the iterator alive (the message holds
                        raise  # the worker's traceback); any other keeps its traceback
                    raise e.with_traceback(None) from None
                if isinstance(images, Exception):
                    raise images
                yield images
        finally:
            # Ends a DataLoader's workers now, on an error or an early stop too: a traceback
            # that kept this frame would keep them until exit, when they are killed and leave
            # their temp folders (multiprocessing's pymp-*) behind.
            loaded = loader = None  # type: ignore[assignment]


class _Chunks(torch.utils.data.Dataset):
    """Chunk ``i`` of a list of index chunks, loaded by the dataset (for a ``DataLoader``)."""

    def __init__(self, dataset: Dataset, chunks: list[list[int]]) -> None:
        self.dataset, self.chunks = dataset, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> torch.Tensor | Exception:
        try:
            return self.dataset.load(self.chunks[i])
        except Exception as e:  # passed back whole (an OSError keeps its errno and file): a
            return e  # DataLoader would raise a copy holding its traceback text and iterator


def _prefetched(dataset: Dataset, chunks: list[list[int]]) -> Iterator[torch.Tensor]:
    """The chunks, each loaded in a thread of its own while the caller computes on the one
    before. The thread ends with its chunk: a loader thread that lived on would keep an idle
    OpenMP team, which slows every operator of the computing thread (``massif.threads``)."""
    futures = (in_background(lambda c=c: dataset.load(c), "massif-load") for c in chunks)
    pending = next(futures, None)
    while pending is not None:
        images = pending.result()
        pending = next(futures, None)  # the next chunk loads while the caller computes
        yield images


def resolve_class(name_or_index: str | int, class_names: Sequence[str]) -> int:
    if isinstance(name_or_index, int) or (
        isinstance(name_or_index, str) and is_index(name_or_index)
    ):
        index = int(name_or_index)
        if not 0 <= index < len(class_names):
            raise MassifError(f"class index {short(index, 20)} is out of range "
                              f"0..{len(class_names) - 1}")
        return index
    wanted = name_or_index.strip().lower()
    for i, name in enumerate(class_names):
        if name.lower() == wanted:
            return i
    # Friendly aliases: "giant panda" for "giant_panda", "tshirt" for "T-shirt/top".
    squash = lambda s: "".join(ch for ch in s.lower() if ch.isalnum())  # noqa: E731
    matches = [i for i, name in enumerate(class_names) if squash(name) == squash(wanted)]
    if len(matches) == 1:
        return matches[0]
    raise did_you_mean(name_or_index, class_names, "class")


# ----------------------------------------------------------------------------- Fashion-MNIST


def fashion_mnist_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("MASSIF_FASHION_MNIST"):
        dirs.append(Path(os.environ["MASSIF_FASHION_MNIST"]))
    dirs.append(DEBIAN_DIR)
    dirs.append(cache_dir() / "fashion-mnist")
    return dirs


def cache_dir() -> Path:
    """``$MASSIF_CACHE``, else ``$XDG_CACHE_HOME/massif``, else ``~/.cache/massif``."""
    if os.environ.get("MASSIF_CACHE"):
        return Path(os.environ["MASSIF_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "massif"


def find_fashion_mnist(split: str) -> Path:
    images, labels = FASHION_FILES[split]
    for d in fashion_mnist_dirs():
        if (d / images).is_file() and (d / labels).is_file():
            return d
    looked = ", ".join(str(d) for d in fashion_mnist_dirs())
    raise MassifError(
        f"Fashion-MNIST ({split}) not found in {looked}; install Debian's dataset-fashion-mnist "
        "package or run `massif download-data`"
    )


def read_idx(path: Path, name: str | None = None) -> np.ndarray:
    """An IDX file's array; an error names the file as ``name`` (default: its path)."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
        magic = int.from_bytes(data[0:4], "big")
        ndim = magic & 0xFF
        if magic >> 8 != 0x08 or ndim not in (1, 3):
            raise ValueError("bad magic number")
        dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
        body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
        return body.reshape(dims)
    except (OSError, ValueError, EOFError) as e:
        raise MassifError(f"corrupt Fashion-MNIST file {name or path}: {e}") from None


class FashionMNIST(Dataset):
    """Fashion-MNIST, 28×28 grayscale, 10 classes; the whole split lives in memory (uint8)."""

    in_memory = True

    def __init__(self, split: str = "test", root: str | Path | None = None) -> None:
        if split not in FASHION_FILES:
            raise MassifError(f"unknown Fashion-MNIST split {split!r}; use train or test")
        folder = Path(root) if root else find_fashion_mnist(split)
        img_file, lab_file = FASHION_FILES[split]
        images = read_idx(folder / img_file)
        labels = read_idx(folder / lab_file)
        if len(images) != len(labels):
            raise MassifError(f"Fashion-MNIST in {folder}: images and labels differ in number")
        self.images = torch.from_numpy(images.copy()).unsqueeze(1)  # [N, 1, 28, 28] uint8
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.class_names = list(FASHION_CLASSES)
        self.name = f"fashion-mnist:{split}"
        h = hashlib.sha256()
        h.update(images.tobytes())
        h.update(labels.tobytes())
        self.fingerprint = h.hexdigest()[:16]

    def load(self, indices: Sequence[int]) -> torch.Tensor:
        return self.images[list(indices)].float().div_(255.0)


class TensorDataset(Dataset):
    """Images already in memory: ``images [N, C, H, W]`` in [0, 1] and ``labels [N]``."""

    in_memory = True

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | Sequence[int],
                 class_names: Sequence[str], name: str = "tensors") -> None:
        try:
            images = torch.as_tensor(images, dtype=torch.float32)
            raw = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError):
            raise MassifError("images and labels must be tensors (or nested lists of "
                              "numbers)") from None
        if raw.is_floating_point() or raw.is_complex() or raw.dtype == torch.bool \
                or raw.ndim != 1:
            raise MassifError(f"labels must be one integer per image, [N]; got "
                              f"{raw.dtype} {tuple(raw.shape)}")
        labels = raw.to(torch.int64)
        if images.ndim != 4 or len(images) != len(labels) or not len(images):
            raise MassifError(f"images must be [N, C, H, W] (N ≥ 1) with one label each; got "
                              f"{tuple(images.shape)} and {len(labels)} labels")
        if not isinstance(class_names, Sequence) or isinstance(class_names, str) \
                or not all(isinstance(c, str) for c in class_names):
            raise MassifError("class_names must be a list of names")
        if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
            raise MassifError("images must be finite and in [0, 1]")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise MassifError("labels must index class_names")
        self.images, self.labels = images, labels
        self.class_names = list(class_names)
        self.name = name
        h = hashlib.sha256(images.numpy().tobytes())
        h.update(labels.numpy().tobytes())
        self.fingerprint = h.hexdigest()[:16]

    def load(self, indices: Sequence[int]) -> torch.Tensor:
        return self.images[list(indices)]


# ----------------------------------------------------------------------------- ImageFolder


_OPEN_LOCK = threading.Lock()  # one thread at a time in ImageFolder._open (see there)


def class_images(folder: Path) -> tuple[list[Path], int]:
    """The images of one class folder, and how many links in it were not followed.

    1. Walk ``folder`` and its sub-folders, each folder once (by device and inode), folders
       reached without a link first; unreadable sub-folders are skipped, as ``os.walk`` does.
    2. Follow a link only while it leads inside ``folder`` (its resolved path): a link out of
       it is counted and skipped, so a loop (``up -> ..``) cannot pull in other classes.
    3. Keep the regular files whose names end in one of ``IMAGE_EXTENSIONS``; a FIFO, socket
       or device is skipped (opening one could block forever).
    4. List each file once (by device and inode; of its names, one reached without a link
       wins), sorted by folder, then name: torchvision's ``make_dataset`` order.
    """
    top = folder.resolve()
    found: dict[tuple[int, int], tuple[bool, str, str]] = {}  # file id -> (linked, dir, name)
    seen: set[tuple[int, int]] = set()
    plain, linked = [(str(folder), False)], []
    outside = 0
    while plain or linked:
        here, via_link = plain.pop() if plain else linked.pop()
        try:
            st = os.stat(here)
            with os.scandir(here) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        for e in entries:
            is_link = e.is_symlink()
            if is_link and not Path(os.path.realpath(e.path)).is_relative_to(top):
                outside += 1
                continue
            link = via_link or is_link
            try:  # (of what a link points to)
                if e.is_dir():
                    (linked if link else plain).append((e.path, link))
                    continue
                est = e.stat() if e.name.lower().endswith(IMAGE_EXTENSIONS) else None
            except OSError:  # a broken link, or one in a loop of links
                continue
            if est is not None and stat.S_ISREG(est.st_mode):
                key, name = (est.st_dev, est.st_ino), (link, here, e.name)
                found[key] = min(found.get(key, name), name)
    return [Path(d, n) for _, d, n in sorted(found.values(), key=lambda f: f[1:])], outside


class ImageFolder(Dataset):
    """``root/<class>/<image>``: each class's images as ``class_images`` lists them, decoded by
    PIL, resized by torchvision (``Resize`` of the shorter side, then ``CenterCrop``) and
    converted to ``channels`` and ``image_size`` on load; our own checks give each problem a
    clear message."""

    def __init__(self, root: str | Path, image_size: int, channels: int) -> None:
        from torchvision import transforms

        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise MassifError(f"data folder {self.root} is a file, not a folder of class "
                              "folders")
        if not self.root.is_dir():
            raise MassifError(f"data folder {self.root} does not exist")
        classes = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if not classes:
            raise MassifError(f"data folder {self.root} has no class sub-folders")
        self.paths: list[Path] = []
        labels: list[int] = []
        for i, c in enumerate(classes):
            paths, outside = class_images(self.root / c)
            if not paths:
                hint = f" ({outside} link(s) leading out of it not followed)" if outside else ""
                raise MassifError(f"class folder {self.root / c} holds no images{hint}")
            self.paths += paths
            labels += [i] * len(paths)
        self.class_names = classes
        self.labels = torch.tensor(labels, dtype=torch.int64)
        self.image_size = image_size
        self.channels = channels
        self.transform = transforms.Compose([
            transforms.Resize(image_size, interpolation=transforms.InterpolationMode.BILINEAR),
            transforms.CenterCrop(image_size), transforms.PILToTensor()])
        self.name = f"imagefolder:{self.root.resolve()}"
        h = hashlib.sha256(f"{image_size}:{channels}".encode())
        for p in self.paths:
            st = p.stat()
            h.update(f"{p.relative_to(self.root)}:{st.st_size}:{st.st_mtime_ns}".encode())
        self.fingerprint = h.hexdigest()[:16]

    def _load_one(self, path: Path) -> torch.Tensor:
        from PIL import UnidentifiedImageError

        try:  # O_NONBLOCK: a file replaced by a FIFO since it was listed cannot hang us
            with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NONBLOCK)) as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise MassifError(f"cannot read image {path}: not a regular file (a FIFO, "
                                      "socket or device)")
                with self._open(f, path) as im:
                    return self.transform(im.convert("L" if self.channels == 1 else "RGB"))
        except UnidentifiedImageError:  # (its message names the file object, not the path)
            raise MassifError(f"cannot read image {path}: not an image format Pillow "
                              "knows") from None
        except (OSError, ValueError) as e:
            raise MassifError(f"cannot read image {path}: {e}") from None

    def _open(self, f: BinaryIO, path: Path) -> Any:
        """``PIL.Image.open(f)`` (it reads the header only), with Pillow's decompression-bomb
        warning (over ``Image.MAX_IMAGE_PIXELS``) turned into the same one-line error as its
        refusal (over twice that): no image that huge is a classifier's input.

        Pitfall: ``warnings.catch_warnings`` changes process-wide state, so only one thread
        opens at a time; decoding, the slow part, happens outside the lock."""
        from PIL import Image

        try:
            with _OPEN_LOCK, warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                return Image.open(f)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise MassifError(
                f"image {path} is over Pillow's limit of {Image.MAX_IMAGE_PIXELS:,} pixels (a "
                "possible decompression bomb); no classifier takes images that large: shrink "
                f"it (this model takes {self.image_size}×{self.image_size}) or move it out of "
                "the data folder"
            ) from None

    def load(self, indices: Sequence[int]) -> torch.Tensor:
        paths = [self.paths[i] for i in indices]
        if len(paths) > 8:
            with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
                tensors = list(pool.map(self._load_one, paths))
        else:
            tensors = [self._load_one(p) for p in paths]
        return torch.stack(tensors).float().div_(255.0)


def load_dataset(spec: str, image_size: int | None = None, channels: int | None = None) -> Dataset:
    """``fashion-mnist[:train|:test]`` or a path to an ImageFolder tree."""
    if not isinstance(spec, (str, os.PathLike)):
        raise MassifError(f"a dataset is fashion-mnist[:train|:test] or a folder path, not "
                          f"{type(spec).__name__}")
    spec = os.fspath(spec)
    if spec.startswith("fashion-mnist"):
        split = spec.split(":", 1)[1] if ":" in spec else "test"
        return FashionMNIST(split)
    if image_size is None or channels is None:
        raise MassifError("an ImageFolder dataset needs the model's image size and channels")
    return ImageFolder(spec, image_size, channels)


def sample_indices(dataset: Dataset, size: int, seed: int = 0) -> list[int]:
    """A fixed all-class sample: each class's images in a seeded shuffle, the classes taken in
    turn (round robin), so any prefix of the list is stratified; ``size`` at most."""
    g = torch.Generator().manual_seed(seed)
    labels = dataset.labels
    per_class = []
    for c in range(len(dataset.class_names)):
        idx = torch.nonzero(labels == c).flatten()
        per_class.append(idx[torch.randperm(len(idx), generator=g)].tolist())
    out: list[int] = []
    depth = 0
    while len(out) < size and any(depth < len(p) for p in per_class):
        out += [p[depth] for p in per_class if depth < len(p)]
        depth += 1
    return out[:size]
