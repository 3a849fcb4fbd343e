"""The controller reaches into the agent package only through its named shared surface."""

import ast
from pathlib import Path

from controller import SHARED_SURFACE

ROOT = Path(__file__).resolve().parents[2]


def test_the_controller_imports_only_the_shared_surface_of_the_agent():
    used: dict[str, set[str]] = {}
    for path in (ROOT / "controller").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.split(".")[0] == "agent":
                used.setdefault(node.module, set()).add(path.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "agent":
                        used.setdefault(alias.name, set()).add(path.name)
    outside = {m: files for m, files in used.items() if m not in SHARED_SURFACE}
    assert not outside, f"controller imports agent modules outside its shared surface: {outside}"
