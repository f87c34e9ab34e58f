"""validation/ as a graph of imports: no cycles inside it, no edges out to the wrong packages.

A cycle (decode imported dicom, dicom imported decode) works only for as long as one
side imports lazily, and makes neither module readable alone; so every import of every
module under validation/ is read with `ast` (lazy imports inside functions and relative
imports included) and the graph must be a DAG. (Which packages validation may import at all is
`tests/test_layout.py`'s rule.) `from pkg import name` is an edge to the
module ``pkg.name`` when that is a module, else to ``pkg``: importing a package's
submodule is what actually runs it.
"""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter
from pathlib import Path


from tests.imports import imported_names, module_paths

ROOT = Path(__file__).resolve().parents[2]


def import_graph(root: Path, package: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(edges between modules of `package`, every name each module imports)."""
    paths = module_paths(root, package)
    known = set(paths)
    imports = {m: imported_names(m, p, known) for m, p in paths.items()}
    internal = {m: {n for n in names if n in known and n != m} for m, names in imports.items()}
    return internal, imports


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a list of modules, or None for a DAG."""
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        return list(exc.args[1])
    return None


GRAPH, IMPORTS = import_graph(ROOT, "validation")


def test_the_reader_sees_lazy_and_submodule_imports() -> None:
    assert "validation.sources.dicom" in GRAPH["validation.sources.decode"]  # lazy, `from pkg import mod`
    assert "validation.sources.pixels" in GRAPH["validation.sources.dicom"]
    assert "validation.release.expectations.guards" in GRAPH["validation.release.expectations"]


def test_a_cycle_through_a_lazy_relative_import_is_found(tmp_path: Path) -> None:
    """The checker itself (relative imports included): the shape decode/dicom had before
    the split must be caught."""
    pkg = tmp_path / "lib" / "inner"
    pkg.mkdir(parents=True)
    (tmp_path / "lib" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from lib.inner import b\n")
    (pkg / "b.py").write_text("from .a import f\n")
    graph, _ = import_graph(tmp_path, "lib")
    assert graph["lib.inner.a"] == {"lib.inner.b"} and graph["lib.inner.b"] == {"lib.inner.a"}
    cycle = find_cycle(graph)
    assert cycle is not None and set(cycle) == {"lib.inner.a", "lib.inner.b"}
    (pkg / "b.py").write_text("X = 1\n")
    assert find_cycle(import_graph(tmp_path, "lib")[0]) is None


def test_validation_imports_form_no_cycle() -> None:
    assert len(GRAPH) > 20
    assert find_cycle(GRAPH) is None


def test_the_dicom_decoder_does_not_import_the_dispatcher() -> None:
    assert "validation.sources.decode" not in GRAPH["validation.sources.dicom"]
    assert GRAPH["validation.sources.pixels"] == set()  # shared ground of both decoders
