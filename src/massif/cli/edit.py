"""``massif edit``: delete neurons and measure the attack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..attacks import CHECKS
from ..terminal import TqdmProgress, fail, run_guarded
from .app import (
    ATTACK_OPTION,
    BATCH_OPTION,
    BENIGN_OPTION,
    CLASS_INDEX_OPTION,
    DATA_OPTION,
    DEVICE_OPTION,
    IMAGE_SIZE_OPTION,
    MAX_IMAGES_OPTION,
    MAX_STRENGTH_OPTION,
    MODEL_OPTION,
    TARGET_OPTION,
    WEIGHTS_OPTION,
    app,
    build_request,
    one_process,
)

_GRAPH_SETS = ("benign", "target", "attack", "untargeted", "max_strength", "steps",
               "max_images")


@app.command()
def edit(
    ctx: typer.Context,
    mask: Optional[str] = typer.Option(None, help="Comma-separated neuron ids to delete, e.g. "
                                       "mixed4a:12,mixed4b:3."),
    mode: str = typer.Option("zero", help="zero (the channel's output set to 0) or mean (to "
                             "its mean over the clean benign images)."),
    graph_file: Optional[Path] = typer.Option(None, "--graph", help="A graph.json: its pair, "
                                              "attack, strengths and image count (and, for "
                                              "--defense, its neurons) instead of --benign, "
                                              "--target, --attack, --untargeted, "
                                              "--max-strength, --steps and --max-images, which "
                                              "it refuses."),
    defense: Optional[int] = typer.Option(None, help="Suggest a defense: greedily delete up to "
                                          "this many (1 to 64) of the graph's neurons, "
                                          "compared with random and top emphasized ones, "
                                          "and the Pareto front of ASR against clean "
                                          "accuracy over every mask it measured."),
    start: Optional[str] = typer.Option(None, help="With --defense: comma-separated neurons "
                                        "already deleted; every mask the search measures "
                                        "holds them and it adds to them."),
    check: Optional[str] = typer.Option(None, "--check", help="With --mask: stronger attacks "
                                        "that know the mask, run at the largest strength "
                                        "through the model before and after, comma-separated: "
                                        f"{', '.join(CHECKS)} (docs/edit.md). Their ASR and "
                                        "robust accuracy, and a warning when the deletion's "
                                        "gain shrinks to half under one (gradient masking?). "
                                        "Slow; none by default."),
    export: Optional[Path] = typer.Option(None, help="Write the edited model (state dict + "
                                          "mask list) to this file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    benign: str = BENIGN_OPTION,
    target: str = TARGET_OPTION,
    attack: str = ATTACK_OPTION,
    untargeted: bool = typer.Option(False, "--untargeted", help="Untargeted attack."),
    max_strength: Optional[float] = MAX_STRENGTH_OPTION,
    steps: int = typer.Option(8, help="Number of strengths, 0 included."),
    model: str = MODEL_OPTION,
    weights: Optional[str] = WEIGHTS_OPTION,
    data: Optional[str] = DATA_OPTION,
    layers: Optional[str] = typer.Option(None, help="Comma-separated layers, in any "
                                         "order: they are analysed in the order the forward "
                                         "pass runs them."),
    image_size: Optional[int] = IMAGE_SIZE_OPTION,
    class_index: Optional[str] = CLASS_INDEX_OPTION,
    max_images: Optional[int] = MAX_IMAGES_OPTION,
    batch_size: Optional[int] = BATCH_OPTION,
    device: str = DEVICE_OPTION,
) -> None:
    """Delete neurons and measure the attack: clean accuracy and attack success rate per
    strength before and after, on the stored attack (transfer) and a fresh one (adaptive)."""

    def work() -> None:
        from ..analysis import run
        from ..devices import resolve_device
        from ..edit import Editor
        from ..edit.checks import checkable, parse_checks
        from ..edit.defense import MAX_BUDGET
        from ..edit.masks import parse_mask
        from ..errors import MassifError
        from ..files import writable_file
        from ..schemas import Graph

        one_process("edit")
        if not mask and defense is None:
            fail("give --mask (neurons to delete) or --defense N (let MASSIF suggest them)")
        if mode not in ("zero", "mean"):
            fail(f"--mode must be zero or mean, not {mode[:20]!r}")
        if defense is not None and not 1 <= defense <= MAX_BUDGET:
            fail(f"--defense must be 1 to {MAX_BUDGET} (neurons to delete), not {defense}")
        if start is not None and defense is None:
            fail("--start is where the defense search starts: give --defense N too")
        if export is not None:
            writable_file(export, "--export")
        checks = parse_checks(check, "--check")
        if checks and mask is None:
            fail("--check measures a mask: give --mask too")
        resolve_device(device)
        req = build_request(
            benign=benign, target=target, model=model, data=data, weights=weights,
            layers=layers, image_size=image_size, class_index=class_index, attack=attack,
            targeted=not untargeted, max_strength=max_strength, steps=steps,
            max_images=max_images, batch_size=batch_size, device=device)
        graph = Graph.load(graph_file) if graph_file else None
        if graph_file is not None:  # the graph names these; a different one would be ignored
            given = [f"--{name.replace('_', '-')}" for name in _GRAPH_SETS
                     if getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"]
            if given:
                fail(f"--graph sets the pair, attack, strengths and image count; drop "
                     f"{', '.join(given)} (or --graph)")
        # (an empty id, "a:1,,", is kept for parse_mask to refuse, as the server's edits do)
        ids = [s.strip() for s in mask.split(",")] if mask is not None else []
        if graph is not None:
            resolved = Editor.graph_request(req, None, graph).resolve()
            Editor.check_graph(resolved, graph)
        else:
            resolved = req.resolve()
        if checks:
            checkable(resolved.attack)
        if mask is not None:  # a bad mask is refused before the editor attacks the class
            parse_mask(ids, resolved.model.layer_channels, list(resolved.model.layers))
        if start is not None:  # and so is a bad start
            try:
                parse_mask(start, resolved.model.layer_channels, list(resolved.model.layers))
            except MassifError as e:
                fail(f"--start: {e}")
        if graph is None and defense is not None:
            typer.echo("analysing the pair first (its graph names the candidate neurons) ...",
                       err=True)
            graph = run(resolved, progress=TqdmProgress())
        editor = Editor(resolved, graph=graph)
        answer: dict[str, object] = {}
        if mask is not None:
            result = editor.evaluate(ids, mode=mode, checks=checks)
            answer["edit"] = result.model_dump(mode="json")
            if not as_json:
                typer.echo(result.table())
        if defense is not None:
            suggestion = editor.suggest_defense(defense, graph=graph, mode=mode, start=start)
            answer["defense"] = suggestion.model_dump(mode="json")
            if not as_json:
                typer.echo(suggestion.table())
            if not ids:
                if not suggestion.greedy:
                    fail(f"the defense deleted no neuron ({suggestion.stopped})")
                ids = list(suggestion.greedy[-1].mask)
        if as_json:  # one JSON document: the edit, or the defense, or both
            typer.echo(json.dumps(answer if len(answer) > 1 else next(iter(answer.values())),
                                  indent=2))
        if export is not None:
            path = editor.export(ids, export, mode=mode)
            typer.echo(f"wrote the edited model ({len(ids)} neurons deleted) to {path}",
                       err=True)

    run_guarded(work)
