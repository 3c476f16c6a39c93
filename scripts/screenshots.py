"""Regenerate the screenshots in docs/images/ from the real page, in Debian's Chromium.

    .venv/bin/python scripts/screenshots.py [--workspace runs/screenshots] [--out docs/images]

It starts ``massif serve`` on a free 127.0.0.1 port with the bundled model (200 Sneakers),
has it compute the default analysis (Sneaker → Sandal) if the workspace lacks it (about two
minutes on 2 cores, pictures included), then opens the page at 1280×800 and 1920×1080 and
saves (as 256-colour PNGs, to keep the repository small): the default view at both sizes; a
hovered neuron with the "change" edge view and the "most changed" pathway at 1920×1080; three
deleted neurons with their numbers, the large view of a neuron's dataset examples, one image's
path (the images tab) and the comparison of the standard and the adversarially trained bundled
models on the default pair (the latter computed here, 200 Sneakers, if the workspace lacks it),
at 1280×800.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = [(1280, 800), (1920, 1080)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, data: dict | None = None) -> dict:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", default=str(ROOT / "runs" / "screenshots"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    massif = [sys.executable, "-m", "massif"]
    server = subprocess.Popen([*massif, "serve", args.workspace, "--port", str(port),
                               "--max-images", "200", "--device", "cpu"],
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        for _ in range(300):
            try:
                info = get(f"{url}/index.json")
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit("the server did not start")
        status = get(f"{url}/analyses", info["default_request"])
        while status["state"] in ("queued", "running"):
            time.sleep(1)
            status = get(f"{url}/analyses/{status['key']}.json")
        if status["state"] != "done":
            raise SystemExit(f"the default analysis failed: {status['error']}")
        robust = robust_analysis(Path(args.workspace))
        shoot(url, status["key"], robust, out)
    finally:
        server.terminate()
        server.wait(30)
    return 0


def robust_analysis(workspace: Path) -> str:
    """The default pair on ``bundled-robust`` (the same 200 Sneakers), saved in the workspace."""
    import massif
    from massif.store import Workspace

    ws = Workspace(workspace)
    request = massif.AnalysisRequest(model="bundled-robust", benign="Sneaker", target="Sandal",
                                     max_images=200, device="cpu")
    key = request.resolve().key
    if not ws.has(key):
        ws.save(massif.analyze(request), key)
    return key


def save(page, path: Path) -> None:
    """A screenshot of the page as a 256-colour PNG (a third of the size, no visible loss)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def shoot(url: str, key: str, robust: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    graph = get(f"{url}/graphs/{key}.json")
    emphasized = sorted((n for n in graph["nodes"] if n["group"] == "emphasized"),
                        key=lambda n: -(n["vulnerability"] or 0))
    hovered = max(graph["nodes"], key=lambda n: sum(e["target"] == n["id"] or
                                                    e["source"] == n["id"]
                                                    for e in graph["edges"]))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-gpu"])

        def page_at(width: int, height: int, path: str, ready: str = "state"):
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url + path)
            page.wait_for_selector(f"html[data-{ready}=ready]", timeout=120_000)
            page.wait_for_load_state("networkidle")  # every neuron's picture
            return page

        for width, height in SIZES:
            page = page_at(width, height, f"/graphs/{key}")
            page.wait_for_timeout(500)  # the pictures
            save(page, out / f"default-{width}x{height}.png")
            page.close()

        page = page_at(1920, 1080, f"/graphs/{key}?edges=change&highlight=changed")
        page.locator(f'#graph-svg .node[data-id="{hovered["id"]}"]').hover()
        page.wait_for_function("document.querySelector('#details img.examples')?.naturalWidth > 0")
        page.wait_for_timeout(800)  # the highlighted copies' pictures
        save(page, out / "hover-change-1920x1080.png")
        page.close()

        page = page_at(1280, 800, f"/graphs/{key}", ready="editor")
        page.locator("#edit-mode").check()
        for node in emphasized[:3]:
            page.locator(f'#graph-svg .node[data-id="{node["id"]}"]').click()
        mask = ",".join(n["id"] for n in emphasized[:3])
        page.wait_for_selector(f"#edit-result[data-mask='{mask}'][data-phase=full]",
                               timeout=120_000)
        page.mouse.move(5, 5)
        save(page, out / "edit-1280x800.png")
        page.close()

        page = page_at(1280, 800, f"/graphs/{key}/nodes/{hovered['id']}")
        page.locator("#details img.examples").click()
        page.wait_for_selector("#lightbox ol.patches li")
        page.wait_for_timeout(300)
        save(page, out / "examples-1280x800.png")
        page.close()

        page = page_at(1280, 800, f"/graphs/{key}?k=3")
        page.click("#tab-images")
        page.wait_for_selector("#gallery .tile", timeout=120_000)
        page.locator("#gallery .tile").first.click()
        page.wait_for_selector("#image-detail .pics", timeout=120_000)
        page.wait_for_timeout(500)
        save(page, out / "image-1280x800.png")
        page.close()

        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{url}/compare?a={key}&b={robust}")
        page.wait_for_selector("body[data-compared]", timeout=60_000)
        page.wait_for_timeout(300)
        save(page, out / "compare-robust-1280x800.png")
        browser.close()
    print(f"screenshots written to {out}")


if __name__ == "__main__":
    raise SystemExit(main())
