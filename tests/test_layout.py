"""The shape of the code, as DESIGN.md draws it ("Packages and their boundaries").

Every import in every module (lazy ones inside functions included) is read with `ast`,
so a rule broken anywhere fails here, naming the module and the import.
"""

from __future__ import annotations

from pathlib import Path

from tests.imports import imported_names, module_paths

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("consentgen", "consent", "generators", "validation", "pipelines", "bench")
MAX_LINES = 400
LONG_MODULES_WITH_A_REASON: dict[str, str] = {
    "pipelines.catalog.schema": "one declaration per catalog table, 14 tables: splitting them "
                                "would scatter the schema the migration and the version cover",
}


MODULES: dict[str, Path] = {}
for _package in PACKAGES:
    MODULES |= module_paths(ROOT, _package)
IMPORTS = {m: imported_names(m, p, set(MODULES)) for m, p in MODULES.items()}


def _offenders(where: str, forbidden: tuple[str, ...], allowed_in: tuple[str, ...] = ()) -> dict:
    def inside(name: str, prefixes: tuple[str, ...]) -> bool:
        return any(name == p or name.startswith(p + ".") for p in prefixes)

    found = {}
    for module, names in IMPORTS.items():
        if inside(module, (where,)) and not inside(module, allowed_in):
            bad = sorted(n for n in names if inside(n, forbidden))
            if bad:
                found[module] = bad
    return found


def test_the_reader_sees_every_kind_of_import() -> None:
    assert len(MODULES) > 80
    assert "dagster" in IMPORTS["pipelines.defs.assets"]
    assert "pipelines.steps.candidates" in IMPORTS["pipelines.defs.assets"]  # a lazy import
    assert "validation.audit.config" in IMPORTS["validation.audit.audit"]  # a relative one


def test_only_pipelines_defs_imports_dagster() -> None:
    dagster = ("dagster", "dagster_k8s", "dagster_celery", "dagster_webserver")
    found = {}
    for package in PACKAGES:
        found |= _offenders(package, dagster, allowed_in=("pipelines.defs",))
    assert found == {}


def test_the_three_libraries_import_neither_each_other_nor_pipelines() -> None:
    libraries = ("consent", "generators", "validation")
    for lib in libraries:
        others = tuple(x for x in libraries if x != lib) + ("pipelines", "bench")
        assert _offenders(lib, others) == {}, lib


def test_shared_ground_imports_no_project_package() -> None:
    assert _offenders("consentgen", ("consent", "generators", "validation", "pipelines")) == {}


def test_the_ledger_needs_no_torch() -> None:
    assert _offenders("consent", ("torch", "diffusers", "opacus")) == {}


def test_pipelines_layers_point_one_way() -> None:
    """catalog <- steps <- defs <- cli; card is drawn by steps and needs only the catalog."""
    assert _offenders("pipelines.catalog", ("pipelines.steps", "pipelines.card", "pipelines.defs",
                                            "pipelines.cli", "pipelines.demo")) == {}
    assert _offenders("pipelines.card", ("pipelines.steps", "pipelines.defs", "pipelines.cli",
                                         "pipelines.demo")) == {}
    assert _offenders("pipelines.steps", ("pipelines.defs", "pipelines.cli", "pipelines.demo")) == {}
    assert _offenders("pipelines.demo", ("pipelines.defs", "pipelines.cli")) == {}
    assert _offenders("pipelines.defs", ("pipelines.cli",)) == {}


def test_no_module_is_too_long_without_a_reason() -> None:
    long = {m: n for m, p in MODULES.items()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert {m: n for m, n in long.items() if m not in LONG_MODULES_WITH_A_REASON} == {}


def test_the_service_sits_beside_the_cli() -> None:
    """The service is a door like the CLI: it uses catalog, steps and settings, never the
    Dagster layer or the commands; steps reach it only through its client (the ledger a
    step reads while a service holds the file)."""
    assert _offenders("pipelines.service", ("pipelines.defs", "pipelines.cli", "pipelines.demo")) == {}
    service_but_client = tuple(m for m in MODULES if m.startswith("pipelines.service.")
                               and m != "pipelines.service.client")
    for layer in ("pipelines.catalog", "pipelines.card", "pipelines.steps"):
        assert _offenders(layer, service_but_client) == {}, layer
