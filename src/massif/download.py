"""Fetch Fashion-MNIST's four files from its official source or a mirror (``massif
download-data``, and only when asked). A download is checked and renamed into place, so an
interrupted one leaves nothing half-written, and a failed one leaves no folder it made."""

from __future__ import annotations

import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .datasets import FASHION_FILES, cache_dir, read_idx
from .errors import MassifError, short
from .io import create_temp

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
    made = _missing_folders(dest)
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
        for folder in made:  # innermost first; one that holds anything stays
            try:
                folder.rmdir()
            except OSError:
                break
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


def _missing_folders(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, innermost first."""
    missing = []
    while not os.path.lexists(path) and path.parent != path:
        missing.append(path)
        path = path.parent
    return missing


def _fetch(address: str, dest: Path, fname: str, url: str, tries: int = 3) -> Path:
    """Download ``address`` into a ``.part`` file in ``dest``; a dropped connection is tried
    again (``tries`` in all); a failed or interrupted download leaves no file behind. The file
    gets the mode of any new file (``io.create_temp``); an error names ``dest / fname``."""
    import http.client

    for attempt in range(tries):
        fd, tmp = create_temp(dest / fname)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(address, timeout=60) as resp:
                shutil.copyfileobj(resp, out)
            return tmp
        except (OSError, http.client.HTTPException, ValueError) as e:
            tmp.unlink()
            if attempt + 1 == tries or isinstance(e, (urllib.error.HTTPError, ValueError)):
                raise MassifError(f"could not download {fname} from {url}: {e}") from None
            time.sleep(0.5 * (attempt + 1))
        except BaseException:  # Ctrl+C
            tmp.unlink()
            raise
    raise AssertionError("unreachable")
