"""Dagster resources: the data home, the ledger, the catalog and the build settings.

Each is plain configuration (strings), so a run launched in another process, pod or
Celery worker rebuilds the same resources from its run config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from consent import Ledger
from consentgen.home import data_home
from pipelines.catalog import Catalog, Snapshot
from pipelines.service.client import ledger_at
from pipelines.settings import BuildConfig, config_from_env


class DataHome(dg.ConfigurableResource):
    """The deployment's data home ("" = $CONSENTGEN_HOME, else ./data)."""

    path: str = ""

    def root(self) -> Path:
        return data_home(self.path or None)


class LedgerResource(dg.ConfigurableResource):
    """The consent ledger, opened briefly per call (read-only for readers); while the
    home's consent service runs (it holds the file), the same calls through it, with the
    owner token its service.json names, so a run or tick started then still reads."""

    home: DataHome
    max_wait_s: float = 60.0

    def ledger(self) -> Ledger:
        return ledger_at(self.home.root(), max_wait_s=self.max_wait_s)


class CatalogResource(dg.ConfigurableResource):
    """The pipeline catalog (sources, snapshots, lineage, releases)."""

    home: DataHome
    max_wait_s: float = 60.0

    def catalog(self) -> Catalog:
        return Catalog(self.home.root(), max_wait_s=self.max_wait_s)


class BuildSettings(dg.ConfigurableResource):
    """The build configuration as JSON; "" = the home's consentgen.toml, read when a run or
    tick asks (so the daemon builds with the file as it is now, as `consentgen build` does,
    not as it was when the code location loaded)."""

    config_json: str = ""
    progress: bool = False

    def config(self) -> BuildConfig:
        return BuildConfig.model_validate_json(self.config_json) if self.config_json else config_from_env()

    def reconcile_config(self) -> BuildConfig:
        """For withdrawing: a typo in the build file must not stop a revocation from being
        honoured, so bad keys are read at their preset's values (and logged by the caller)."""
        if self.config_json:
            return self.config()
        from pipelines.buildfile import load_config_leniently

        return load_config_leniently()[0]


def build_resources(config: BuildConfig | None, home: str | Path | None, *,
                    progress: bool) -> dict[str, Any]:
    """`config` None: the settings are the home's build file, read at run time."""
    home_res = DataHome(path=str(home) if home else "")
    return {
        "ledger": LedgerResource(home=home_res),
        "catalog": CatalogResource(home=home_res),
        "settings": BuildSettings(config_json=config.model_dump_json() if config else "",
                                  progress=progress),
    }


SNAPSHOT_TAG = "consentgen/snapshot_id"


def run_snapshot(context: Any, catalog: Catalog) -> Snapshot:
    """The snapshot this run is bound to: the one named by its `consentgen/snapshot_id` tag
    (a publish re-run of an audited build), else the one it took itself; never the newest."""
    named = context.run.tags.get(SNAPSHOT_TAG)
    return catalog.snapshot(named) if named else catalog.snapshot_for_run(context.run.run_id)
