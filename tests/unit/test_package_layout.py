"""One import namespace: every part of the project is imported as ``fraudstream.<folder>``.

The design's top-level folders (``workers/``, ``model_registry/``, ``monitoring/``, ...) stay
where a reader looks for them; ``fraudstream/<folder>`` is a link to each, so that the import
name follows the folder name and only one distribution package, ``fraudstream``, is installed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The top-level folders that are parts of the ``fraudstream`` package.
PARTS = ("bench", "chaos", "deploy", "features", "model_registry", "monitoring", "simulator",
         "workers")
SKIPPED_DIRS = {".venv", ".stack", "build", "libs", ".git", "node_modules", "fraudstream"}


def project_sources() -> list[Path]:
    """Every Python file of the repository, each once (the links under fraudstream/ skipped)."""
    found = [path for path in ROOT.rglob("*.py")
             if not SKIPPED_DIRS & set(path.relative_to(ROOT).parts[:-1])]
    return found + [path for path in (ROOT / "fraudstream").rglob("*.py")
                    if path.resolve().is_relative_to(ROOT / "fraudstream")]


def old_style_imports(path: Path) -> list[str]:
    """``file:line module`` of each import of a part by its bare folder name."""
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    hits = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        hits += [f"{where}:{node.lineno} {name}" for name in names
                 if name.split(".")[0] in PARTS]
    return hits


def test_every_part_is_a_link_under_the_fraudstream_package() -> None:
    for part in PARTS:
        link = ROOT / "fraudstream" / part
        assert link.is_symlink() and link.resolve() == ROOT / part, (
            f"fraudstream/{part} must be a link to the top-level {part}/ folder")
        assert (ROOT / part / "__init__.py").exists()


def test_no_source_imports_a_part_by_its_folder_name() -> None:
    sources = project_sources()
    assert ROOT / "workers" / "app.py" in sources and ROOT / "fraudstream" / "cli.py" in sources
    hits = [hit for path in sources for hit in old_style_imports(path)]
    assert hits == [], ("import the project's parts as fraudstream.<folder> (one module, one "
                        f"name; a second name would load it twice): {hits}")


def test_the_guard_sees_an_old_style_import(tmp_path: Path) -> None:
    bad = tmp_path / "old_style.py"
    bad.write_text("from workers.app import WorkerApp\nimport chaos.runner\n"
                   "from fraudstream.workers import app\n")
    assert [hit.split()[-1] for hit in old_style_imports(bad)] == ["workers.app", "chaos.runner"]
