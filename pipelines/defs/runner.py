"""Running the definitions in process: `consentgen build`, the demo, and the tests.

The same `build` job a deployment runs from its schedule or sensor, executed here with a
persistent Dagster instance under `<home>/.dagster` (so `consentgen ui` shows the runs).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from consentgen.errors import ConsentgenError
from pipelines.defs.definitions import make_definitions, range_tags
from pipelines.settings import BuildConfig

DAGSTER_DIR = ".dagster"
REPO_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"


class BuildFailed(ConsentgenError):
    """A build run did not publish; says which step or check stopped it."""


def dagster_home(home: Path) -> Path:
    """`<home>/.dagster`, with the project's dagster.yaml, created on first use."""
    path = home / DAGSTER_DIR
    path.mkdir(parents=True, exist_ok=True)
    target = path / "dagster.yaml"
    if not target.exists():
        if REPO_DAGSTER_YAML.exists():
            shutil.copyfile(REPO_DAGSTER_YAML, target)
        else:
            target.write_text("telemetry:\n  enabled: false\n")
    return path


def instance_for(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(dagster_home(home)))


@dataclass
class BuildReport:
    success: bool
    run_id: str
    version: str | None
    checks: dict[str, bool] = field(default_factory=dict)
    retrained: int | None = None
    failure: str | None = None


def report_of(result: dg.ExecuteInProcessResult) -> BuildReport:
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    version = retrained = None
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        key = event.asset_key.to_user_string()
        if key == "release":
            version = meta["version"].value
        if key == "shard_models":
            retrained = meta["retrained"].value
    failure = None
    if not result.success or version is None:
        failed_checks = [name for name, ok in checks.items() if not ok]
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        if failed_checks:
            failure = f"blocking check(s) failed: {', '.join(failed_checks)}"
        elif failures:
            err = failures[0].step_failure_data.error
            failure = f"step {failures[0].step_key} failed: {err.message.strip() if err else 'unknown'}"
        else:
            failure = "the run published no release"
    return BuildReport(result.success and version is not None, result.run_id, version, checks,
                       retrained, failure)


def run_build(home: Path, config: BuildConfig, *, shards: list[int] | None = None,
              instance: dg.DagsterInstance | None = None, progress: bool = False,
              selection: dg.AssetSelection | None = None, log_level: str = "WARNING") -> BuildReport:
    """One in-process run of the build job over `shards` (default: all of them)."""
    defs = make_definitions(config, home, progress=progress)
    job = defs.resolve_job_def("build")
    instance = instance or instance_for(home)
    keys = shards if shards is not None else list(range(config.shards))
    result = job.execute_in_process(
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        instance=instance, tags=range_tags(keys), raise_on_error=False,
        asset_selection=sorted(selection.resolve(defs.resolve_asset_graph())) if selection else None,
    )
    return report_of(result)


@dataclass
class SensorTick:
    cursor: int
    shards: list[int]
    run_keys: list[str]


def tick_revocation_sensor(home: Path, config: BuildConfig, *, cursor: int,
                           instance: dg.DagsterInstance | None = None) -> SensorTick:
    """Evaluate the revocation sensor once through Dagster's own test API.

    The sensor withdraws at once (its side effect); the returned shards are those its run
    request asks to rebuild, which the caller may run with `run_build(shards=...)`.
    """
    defs = make_definitions(config, home)
    sensor = defs.resolve_sensor_def("revocation_sensor")
    resources = defs.resources
    with dg.build_sensor_context(instance=instance or instance_for(home), cursor=str(cursor),
                                 resources=resources, definitions=defs) as context:
        result = sensor(context)
    shards: list[int] = []
    for request in result.run_requests or []:
        start = int(request.tags["dagster/asset_partition_range_start"])
        end = int(request.tags["dagster/asset_partition_range_end"])
        shards += list(range(start, end + 1))
    return SensorTick(int(result.cursor), sorted(set(shards)),
                      [r.run_key for r in result.run_requests or []])
