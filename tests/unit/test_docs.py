"""Docs cannot drift: README's two commands are the ones CI runs, and every CLI option is
documented."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from massif.cli import app

ROOT = Path(__file__).resolve().parents[2]


def docs_text() -> str:
    parts = [(ROOT / "README.md").read_text()]
    parts += [p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))]
    return "\n".join(parts)


def test_readme_first_screen_has_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [ln.split("#")[0].strip() for ln in first_block.splitlines() if ln.strip()]
    assert commands == ["./run.sh", "./test.sh"]
    assert readme.index("./test.sh") < 1500  # on the first screen
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./test.sh" in ci


def test_every_cli_command_and_option_is_documented():
    group = typer.main.get_command(app)
    text = docs_text()
    missing = []
    for name, cmd in group.commands.items():
        if f"massif {name}" not in text:
            missing.append(f"massif {name}")
        for param in cmd.params:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help" and opt not in text:
                    missing.append(f"massif {name} {opt}")
    assert not missing, f"undocumented: {missing}"


def test_every_http_endpoint_is_documented(tmp_path):
    """Each route of the server (method and path) has its row in docs/web.md."""
    from massif.server import create_app
    from tests.helpers.tiny import planted_dataset, planted_model

    app = create_app(tmp_path, planted_model(), planted_dataset(), device="cpu",
                     pictures=False)
    web = (ROOT / "docs" / "web.md").read_text()
    missing = []
    for route in app.routes:
        methods = sorted(getattr(route, "methods", None) or [])
        path = route.path.replace("{neuron_id}", "{id}").replace("{job_id}", "{id}")
        if path in ("/openapi.json", "/api", "/docs/oauth2-redirect") \
                or path.startswith("/static"):
            continue
        for method in methods:
            if method in ("HEAD", "OPTIONS"):
                continue
            path_doc = path.replace("{kind}.png", "picture.png")
            if f"`{method} {path_doc}" not in web:
                missing.append(f"{method} {path}")
    assert not missing, f"undocumented endpoints: {missing}"
