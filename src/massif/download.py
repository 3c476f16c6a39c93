"""Fetch Fashion-MNIST's four files from its official source or a mirror (``massif
download-data``, and only when asked), and a torchvision model's published weights into torch's
own cache (``--weights DEFAULT``). A download is checked and renamed into place, so an
interrupted one leaves nothing half-written, and a failed one leaves no folder it made."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .datasets import FASHION_FILES, cache_dir, read_idx
from .errors import MassifError, short
from .files import create_temp

FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def download_fashion_mnist(dest: Path | None = None, url: str | None = None) -> Path:
    """Download the four Fashion-MNIST files into ``dest`` (default: the user cache).

    Each file is written to a temporary name and renamed, so an interrupted download leaves
    nothing half-written. ``url`` (or ``$MASSIF_FASHION_MNIST_URL``) replaces the official source;
    its form is checked before anything is made. A failed download removes the folders it made
    that are still empty, so a run that fetched nothing leaves nothing behind.
    """
    dest = Path(dest) if dest else cache_dir() / "fashion-mnist"
    if url:
        what = "the mirror URL"
    elif os.environ.get("MASSIF_FASHION_MNIST_URL"):
        url, what = os.environ["MASSIF_FASHION_MNIST_URL"], "$MASSIF_FASHION_MNIST_URL"
    else:
        url, what = FASHION_URL, "the official URL"
    check_url(url, what)
    made = missing_folders(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for pair in FASHION_FILES.values():
            for fname in pair:
                if (dest / fname).is_file():
                    continue
                tmp = _fetch(url.rstrip("/") + "/" + fname, dest, fname, url)
                try:  # refuse a corrupt download before it takes the real name
                    read_idx(tmp, name=f"{fname} (downloaded from {url})")
                except MassifError:
                    tmp.unlink()
                    raise
                os.replace(tmp, dest / fname)
    except BaseException:  # an error or Ctrl+C: the folders made for nothing go too
        remove_empty(made)
        raise
    return dest


def torchvision_weights(weights: Any, model: str) -> Path:
    """The file of a torchvision ``weights`` entry (``GoogLeNet_Weights.IMAGENET1K_V1``) in
    torch's hub cache (``$TORCH_HOME/hub/checkpoints``), downloaded first when it is not there.

    torchvision would fetch it too, but it prints ``Downloading: ...`` on stdout, where our
    summary goes, and waits on a dead connection without end. Here the download has a timeout
    and three tries, shows a byte count on stderr only when a person watches it, is checked
    against the hash in the file's name, and fails as one ``MassifError`` naming ``model``,
    leaving no file and no folder it made."""
    import torch.hub

    url = str(weights.url)
    dest = Path(torch.hub.get_dir()) / "checkpoints" / Path(urllib.parse.urlsplit(url).path).name
    if dest.is_file():
        return dest
    made = missing_folders(dest.parent)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = _fetch(url, dest.parent, dest.name, url, what=f"the {model} weights",
                     show=sys.stderr.isatty())
        expected = re.search(r"-([a-f0-9]+)\.", dest.name)  # name-<SHA-256 prefix>.pth
        sha = hashlib.sha256()
        with open(tmp, "rb") as f:  # a chunk at a time: some weights are gigabytes
            while chunk := f.read(1 << 20):
                sha.update(chunk)
        digest = sha.hexdigest()
        if expected and not digest.startswith(expected.group(1)):
            tmp.unlink()
            raise MassifError(f"the {model} weights from {url} are damaged (their SHA-256 "
                              f"{digest[:12]}… does not start with {expected.group(1)}); "
                              "try again")
        os.replace(tmp, dest)
    except BaseException:
        remove_empty(made)
        raise
    return dest


def check_url(url: str, what: str) -> str:
    """Refuse, in one line naming ``what``, a ``url`` of a form no download can use, before
    anything is made (``urlopen`` would raise a ``ValueError`` only once a download starts):
    ``http``, ``https`` and ``ftp`` need a host (and a valid port), ``file`` (a local mirror) a
    path; nothing else is accepted."""
    try:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        ok = (scheme in ("http", "https", "ftp") and bool(parts.hostname)
              and (parts.port is None or parts.port > 0)) or (scheme == "file" and bool(parts.path))
    except ValueError:  # a bad port or IPv6 address
        ok = False
    if not ok or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise MassifError(f"{what} {short(url)} is not a URL to download from; give one like "
                          "https://host/folder/ (http, https, ftp or file)")
    return url


def missing_folders(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, innermost first."""
    missing = []
    while not os.path.lexists(path) and path.parent != path:
        missing.append(path)
        path = path.parent
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (innermost first) while they are empty; one that holds anything
    stays, and so do its parents."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break


def _fetch(address: str, dest: Path, fname: str, url: str, tries: int = 3,
           what: str | None = None, show: bool = False) -> Path:
    """Download ``address`` into a ``.part`` file in ``dest``; a dropped connection is tried
    again (``tries`` in all); a failed or interrupted download leaves no file behind. The file
    gets the mode of any new file (``io.create_temp``); an error names ``what`` (default
    ``fname``). ``show`` draws a byte count on stderr."""
    import http.client

    for attempt in range(tries):
        fd, tmp = create_temp(dest / fname)
        try:
            # a fresh opener reads the proxy settings now (``urlopen``'s is built once)
            opener = urllib.request.build_opener()
            with os.fdopen(fd, "wb") as out, opener.open(address, timeout=60) as resp:
                if show:
                    from tqdm import tqdm

                    size = int(resp.headers.get("Content-Length") or 0) or None
                    with tqdm(total=size, desc=f"downloading {what or fname}", unit="B",
                              unit_scale=True, unit_divisor=1024, file=sys.stderr) as bar:
                        while chunk := resp.read(1 << 20):
                            out.write(chunk)
                            bar.update(len(chunk))
                else:
                    shutil.copyfileobj(resp, out)
            return tmp
        except (OSError, http.client.HTTPException, ValueError) as e:
            tmp.unlink()
            if attempt + 1 == tries or isinstance(e, (urllib.error.HTTPError, ValueError)):
                raise MassifError(f"could not download {what or fname} from {url}: {e}") from None
            time.sleep(0.5 * (attempt + 1))
        except BaseException:  # Ctrl+C
            tmp.unlink()
            raise
    raise AssertionError("unreachable")
