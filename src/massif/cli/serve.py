"""``massif serve``: the interactive page for a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..terminal import run_guarded, say
from .app import (
    BATCH_OPTION,
    CACHE_OPTION,
    CLASS_INDEX_OPTION,
    DEVICE_OPTION,
    IMAGE_SIZE_OPTION,
    WEIGHTS_OPTION,
    app,
    build_request,
    check_port,
    one_process,
    picture_cache,
    removed_on_failure,
)


@app.command()
def serve(
    workspace: Path = typer.Argument(Path("runs/demo"), help="Workspace folder: saved analyses "
                                     "are served from it, new ones saved in it; the analyses "
                                     "that analyze --out wrote in it or a level below are "
                                     "served too."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (127.0.0.1: only this "
                             "machine; anything else is reachable by others and warned "
                             "about: the server has no authentication). Requests must name "
                             "it, or a loopback name, as their host (0.0.0.0: also any IP "
                             "address or this machine's name)."),
    port: int = typer.Option(8000, help="Port to listen on."),
    model: str = typer.Option("bundled", help="Model for new analyses: bundled, "
                              "bundled-robust, bundled-vit, torchvision:NAME, timm:NAME, "
                              "hf:FOLDER_OR_NAME or path/to/file.py:factory."),
    weights: Optional[str] = WEIGHTS_OPTION,
    data: Optional[str] = typer.Option(None, help="Dataset for new analyses (default: the "
                                       "model's own)."),
    layers: Optional[str] = typer.Option(None, help="Comma-separated layers, in any "
                                         "order: they are analysed in the order the forward "
                                         "pass runs them."),
    image_size: Optional[int] = IMAGE_SIZE_OPTION,
    class_index: Optional[str] = CLASS_INDEX_OPTION,
    max_images: Optional[int] = typer.Option(None, help="Use at most this many images of "
                                             "the benign class in new analyses."),
    batch_size: Optional[int] = BATCH_OPTION,
    device: str = DEVICE_OPTION,
    pictures: bool = typer.Option(True, "--pictures/--no-pictures", help="Make feature "
                                  "visualizations and dataset examples for new analyses."),
    cache: Optional[Path] = CACHE_OPTION,
) -> None:
    """Serve the interactive page for a workspace; new pairs are analysed on demand."""

    def work() -> None:
        from ..devices import resolve_device
        from ..files import make_dir
        from ..server import bind, create_app, run

        one_process("serve")
        check_port(port)
        req = build_request(benign=0, target=None, model=model, data=data, weights=weights,
                            layers=layers, image_size=image_size, class_index=class_index,
                            max_images=max_images, batch_size=batch_size, device=device)
        resolve_device(device)
        from ..pictures import cache_root

        # a failed start leaves no empty folder
        with removed_on_failure(workspace, cache_root(cache)):
            make_dir(workspace, "the workspace")
            picture_cache(cache)
            sock = bind(host, port)  # first, so a port in use is reported at once
            say(f"loading model {model} ...")
            app_ = create_app(workspace, cache=cache, pictures=pictures, request=req, host=host)
        run(app_, host, port, sock)

    run_guarded(work)
