"""``massif compare``: two analyses side by side (two strengths, two attacks, two models)."""

from __future__ import annotations

import typer

from ..terminal import run_guarded
from .app import app


@app.command()
def compare(
    a: str = typer.Argument(..., help="Analysis A: its graph.json or the folder holding it, "
                            "optionally with @STRENGTH to compare it at its largest strength "
                            "up to that (runs/panda@1.5; default its largest)."),
    b: str = typer.Argument(..., help="Analysis B, the same way (it may be A at another "
                            "strength)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    most: int = typer.Option(8, min=1, max=1000, help="Neurons listed per group and side."),
) -> None:
    """Compare two analyses: attack success, where attacked images cross, and which neurons
    are emphasized or suppressed in one and not the other (same model only)."""

    def work() -> None:
        from ..comparison import compare as compare_graphs
        from ..comparison import comparison_text, parse_ref
        from ..report import find_run

        (run_a, eps_a), (run_b, eps_b) = parse_ref(a), parse_ref(b)
        graph_a, _, key_a = find_run(run_a)
        graph_b, _, key_b = find_run(run_b)
        c = compare_graphs(graph_a, graph_b, eps_a, eps_b, key_a, key_b)
        typer.echo(c.model_dump_json(indent=2) if as_json else comparison_text(c, most))

    run_guarded(work)
