"""The Definitions of consentgen: what `consentgen ui`, the daemon and `consentgen build` load.

`defs` is built from the deployment's settings (environment) over `$CONSENTGEN_HOME`;
`make_definitions` builds the same for any config, home and executor — the runner and the
tests use it. The default executor is Dagster's (multiprocess where a run is launched,
in process in `execute_in_process`); a deployment passes `dagster_k8s.k8s_job_executor`
or `dagster_celery.celery_executor` to train shards on other machines.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines.defs.assets import build_assets
from pipelines.defs.checks import CHECKS
from pipelines.defs.jobs import BUILD_JOB, build_job, publish_job
from pipelines.defs.logs import LOGGERS
from pipelines.defs.resources import build_resources
from pipelines.defs.schedules import refresh_schedule
from pipelines.defs.sensors import revocation_sensor
from pipelines.buildfile import load_config_leniently
from pipelines.settings import BuildConfig


def make_definitions(config: BuildConfig | None = None, home: str | Path | None = None, *,
                     progress: bool = False,
                     executor: dg.ExecutorDefinition | None = None) -> dg.Definitions:
    """Definitions for `config` over `home`. Without a config (the daemon's and `consentgen
    ui`'s), the graph's shape (shards, the schedule) comes from the build file now, read
    leniently so a typo cannot stop the revocation sensor, and every run and tick reads
    the file again when it starts (a run refuses a bad file in one line)."""
    live = config is None
    if config is None:
        config = load_config_leniently()[0]
    assets = build_assets(config.shards)
    keys = [key for a in assets for key in a.keys]
    return dg.Definitions(
        assets=assets, asset_checks=CHECKS, jobs=[build_job(executor), publish_job()],
        sensors=[revocation_sensor(keys)], schedules=[refresh_schedule(keys, config.schedule)],
        resources=build_resources(None if live else config, home, progress=progress), executor=executor,
        loggers=LOGGERS)


def reconstruct_build_job(config_json: str, home: str, progress: bool) -> dg.JobDefinition:
    """The build job rebuilt in a step's own process (multiprocess executor): module-level,
    arguments as plain strings, so `dg.build_reconstructable_job` can name it."""
    defs = make_definitions(BuildConfig.model_validate_json(config_json), home, progress=progress)
    return defs.resolve_job_def(BUILD_JOB)


defs = make_definitions()
