"""A standalone report: one HTML file that shows an analysis with no server and no network.

``massif report RUN -o report.html`` (or ``write_report``) writes the page of ``massif serve``
for one analysis with everything inlined: the graph, its neurons' pictures as ``data:`` URIs,
the examples' patch classes, the style sheet, D3 (with its licence) and the page's ES modules.
The modules are bundled here, without a build tool: each becomes a function whose ``import``
lines read the exports of the modules before it (they are written in one plain style, which
``bundle_modules`` checks: a style it does not know is an error, never a broken page). The page
sees ``window.MASSIF_REPORT`` and answers its reads from it (``api.js``); what needs a server
(new pairs, deleting neurons, defenses) is hidden.

The same HTML, in an ``<iframe srcdoc>``, is how a ``Graph`` shows itself in Jupyter
(IPython's display formatter, told in ``massif/__init__``); ``massif.show`` writes it and
opens it in the web browser.
"""

from __future__ import annotations

import base64
import html as html_text
import json
import re
from collections.abc import Sequence
from pathlib import Path

from .attacks import ATTACKS, attack_label
from .errors import MassifError
from .schemas import Graph

STATIC = Path(__file__).parent / "server" / "static"
_IMPORT_ALL = re.compile(r'^import \* as (\w+) from "\./([\w-]+)\.js";\n', re.M)
_IMPORT_SOME = re.compile(r'^import \{([^}]*)\} from "\./([\w-]+)\.js";\n', re.M)
_EXPORT = re.compile(r"^export (?:async function\*?|function\*?|const|let|class) (\w+)", re.M)


def bundle_modules(folder: Path = STATIC / "js", entry: str = "main") -> str:
    """The page's ES modules as one classic script, each module a function run once, in an
    order where every module comes after those it imports."""
    sources = {p.stem: p.read_text() for p in sorted(folder.glob("*.js"))}
    bodies: dict[str, str] = {}
    needs: dict[str, list[str]] = {}
    for name, text in sources.items():
        deps: list[str] = []

        def whole(m: re.Match) -> str:
            deps.append(m.group(2))  # noqa: B023  (used at once)
            return f'const {m.group(1)} = modules["{m.group(2)}"];\n'

        def some(m: re.Match) -> str:
            deps.append(m.group(2))  # noqa: B023
            names = ", ".join(part.strip().replace(" as ", ": ")
                              for part in m.group(1).split(",") if part.strip())
            return f'const {{ {names} }} = modules["{m.group(2)}"];\n'

        body = _IMPORT_SOME.sub(some, _IMPORT_ALL.sub(whole, text))
        exports = _EXPORT.findall(body)
        body = re.sub(r"^export (?=(?:async function|function|const|let|class)\b)", "", body,
                      flags=re.M)
        left = re.findall(r"^\s*(?:import|export)\b.*$", body, flags=re.M)
        if left:
            raise MassifError(f"js/{name}.js: cannot bundle {left[0].strip()[:80]!r}")
        bodies[name] = f'{body}\nreturn {{ {", ".join(exports)} }};'
        needs[name] = deps
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...] = ()) -> None:
        if name in order:
            return
        if name in path or name not in bodies:
            raise MassifError(f"js modules: cannot order {' -> '.join(path + (name,))}")
        for dep in needs[name]:
            visit(dep, path + (name,))
        order.append(name)

    visit(entry)
    parts = [f'// js/{name}.js\nmodules["{name}"] = (() => {{\n"use strict";\n'
             f'{bodies[name]}\n}})();' for name in order]
    return "(() => {\nconst modules = {};\n" + "\n".join(parts) + "\n})();\n"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _script_safe(text: str) -> str:
    """Text that cannot end the <script> element it is placed in."""
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def report_data(graph: Graph, picture_roots: Sequence[Path], key: str) -> dict:
    """What the page reads, for one analysis: the graph, its pictures and its examples' patch
    classes, and the page's start-up information (the two classes, no computing)."""
    from .pictures.files import example_patches, picture_file

    pictures: dict[str, str] = {}
    examples: dict[str, str] = {}
    patches: dict[str, list] = {}
    for node in graph.nodes:
        picture = picture_file(picture_roots, graph, node, "picture")
        if picture.is_file():
            pictures[node.id] = _data_uri(picture)
        strip = picture_file(picture_roots, graph, node, "examples")
        if strip.is_file():
            examples[node.id] = _data_uri(strip)
            found = example_patches(picture_roots, graph, node)
            if found is not None:
                patches[node.id] = [p.model_dump() for p in found]
    attack = attack_label(graph.attack)
    spec = ATTACKS[attack]
    info = {
        "model": graph.model.name, "dataset": graph.dataset.name, "can_analyze": False,
        "why_not": None, "report": True,
        "classes": sorted(({"index": c.index, "name": c.name}
                           for c in (graph.benign, graph.target)), key=lambda c: c["index"]),
        "attacks": [attack], "default_max_strength": {attack: graph.attack.strengths[-1]},
        "attack_choices": [{"label": attack, "name": spec.name, "norm": spec.norm,
                            "default_max_strength": graph.attack.strengths[-1],
                            "strength": spec.strength, "description": spec.description}],
        "default_request": {"benign": graph.benign.index, "target": graph.target.index,
                            "attack": attack, "targeted": graph.attack.targeted,
                            "max_strength": graph.attack.strengths[-1]},
        "analyses": [{"key": key, "benign": graph.benign.name, "target": graph.target.name,
                      "attack": attack, "targeted": graph.attack.targeted,
                      "max_strength": graph.attack.strengths[-1], "model": graph.model.name,
                      "same_model": True}],
    }
    return {"key": key, "info": info, "graph": json.loads(graph.to_json(indent=None)),
            "pictures": {"pictures": pictures, "examples": examples}, "examples_info": patches}


def report_html(data: dict) -> str:
    """The page with ``data`` (``report_data``) and everything it loads inlined."""
    page = (STATIC / "index.html").read_text()
    d3 = (STATIC / "d3.min.js").read_text()
    licence = (STATIC / "d3.LICENSE").read_text().replace("*/", "* /")
    replacements = {
        '<link rel="stylesheet" href="/static/style.css">':
            f"<style>\n{(STATIC / 'style.css').read_text()}</style>",
        '<script src="/static/d3.min.js"></script>':
            f"<script>/* D3 7.9.2, https://d3js.org\n{licence}*/\n{_script_safe(d3)}</script>",
        # A module script runs once the page is parsed; the bundle, a classic script, must
        # come after the body to do the same.
        '<script type="module" src="/static/js/main.js"></script>': "",
        "</body>":
            "<script>window.MASSIF_REPORT = "
            f"{_script_safe(json.dumps(data, separators=(',', ':')))};</script>\n"
            f"<script>\n{_script_safe(bundle_modules())}</script>\n</body>",
    }
    for old, new in replacements.items():
        if old not in page:
            raise MassifError(f"index.html no longer has {old!r}; update report.py")
        page = page.replace(old, new)
    return page.replace("<title>MASSIF</title>",
                        f"<title>MASSIF report: {_escape(data['graph']['benign']['name'])} → "
                        f"{_escape(data['graph']['target']['name'])}</title>", 1)


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def find_run(run: str | Path) -> tuple[Graph, Path, str]:
    """The analysis at ``run`` (a ``graph.json``, a folder holding one, or a workspace's
    ``graphs/<key>`` folder): its graph, its file and a key (the folder's name)."""
    path = Path(run)
    if path.is_dir():
        path = path / "graph.json"
    if not path.is_file():
        raise MassifError(f"no analysis at {str(run)[:200]}: give a graph.json or the folder "
                          "holding one (massif analyze --out FOLDER writes it)")
    graph = Graph.load(path)
    key = re.sub(r"[^a-z0-9-]+", "-", path.parent.name.lower()).strip("-")[:200] or "report"
    return graph, path, key


def picture_roots_for(graph_path: Path, cache: str | Path | None = None) -> list[Path]:
    """Where a run's pictures may be: its workspace (when the run is ``<ws>/graphs/<key>``),
    then the cache."""
    from .pictures import cache_root

    roots = []
    folder = graph_path.resolve().parent
    if folder.parent.name == "graphs":
        roots.append(folder.parent.parent)
    roots.append(cache_root(cache))
    return roots


def write_report(run: str | Path, out: str | Path,
                 cache: str | Path | None = None) -> tuple[Path, dict[str, int]]:
    """Write the standalone report of the analysis at ``run`` to ``out`` (atomically); returns
    the path and counts: ``nodes``, and those with a ``pictures`` and ``examples``."""
    from .files import writable_file, write_atomic

    writable_file(out, "the report")
    graph, path, key = find_run(run)
    data = report_data(graph, picture_roots_for(path, cache), key)
    counts = {"nodes": len(graph.nodes), "pictures": len(data["pictures"]["pictures"]),
              "examples": len(data["pictures"]["examples"])}
    return write_atomic(out, report_html(data)), counts


def graph_key(graph: Graph) -> str:
    """A key for a graph that has no folder: ``benign-target-attack``."""
    from .files import slug

    return f"{slug(graph.benign.name)}-{slug(graph.target.name)}-{slug(graph.attack.name)}"


def notebook_html(graph: Graph, cache: str | Path | None = None, height: int = 820) -> str:
    """The report of ``graph`` (pictures from the cache) in an ``<iframe srcdoc>``, for Jupyter:
    it runs in its own document, so the page's script and style touch nothing of the notebook."""
    from .pictures import cache_root

    doc = report_html(report_data(graph, [cache_root(cache)], graph_key(graph)))
    return (f'<iframe srcdoc="{html_text.escape(doc, quote=True)}" sandbox="allow-scripts" '
            f'style="width:100%;height:{int(height)}px;border:1px solid #ddd" '
            f'title="MASSIF: {html_text.escape(graph.benign.name)} → '
            f'{html_text.escape(graph.target.name)}"></iframe>')


def show(graph: Graph | str | Path, out: str | Path | None = None,
         cache: str | Path | None = None, browser: bool = True) -> Path:
    """Write the report of ``graph`` (a ``Graph``, or a run as for ``massif report``) to ``out``
    (default: ``<cache>/reports/<key>.html``, so nothing lands in the working folder) and open
    it in the web browser (``browser=False``: only write it). Returns the file."""
    import webbrowser

    from .files import as_path, writable_file, write_atomic
    from .pictures import cache_root

    if cache is not None:
        as_path(cache, "cache")
    if isinstance(graph, Graph):
        key, roots = graph_key(graph), [cache_root(cache)]
    else:
        graph, path, key = find_run(as_path(graph, "graph (a Graph or a run's folder or file)"))
        roots = picture_roots_for(path, cache)
    target = (as_path(out, "out") if out is not None
              else cache_root(cache) / "reports" / f"{key}.html")
    writable_file(target, "the report")
    write_atomic(target, report_html(report_data(graph, roots, key)))
    if browser:
        webbrowser.open(target.resolve().as_uri())
    return target
