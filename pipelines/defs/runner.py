"""Running the definitions from Python: `consentgen build`, the demo, the bench and the tests.

The same `build` job a deployment runs from its schedule or sensor, executed with a
persistent Dagster instance under `<home>/.dagster` (so `consentgen ui` shows the runs).
In process by default; with `parallel=N` the multiprocess executor runs up to N steps
(shard trainings) at once, each in its own process with its share of the CPU threads.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from consentgen.errors import ConsentgenError
from pipelines.catalog import Catalog
from pipelines.defs.assets import BUILD_TAG, shard_of_key
from pipelines.defs.definitions import make_definitions
from pipelines.defs.jobs import BUILD_JOB, selected_shards, shards_selection
from pipelines.settings import BuildConfig
from pipelines.steps.locks import build_lock
from pipelines.steps.sweep import SweepReport, sweep

DAGSTER_DIR = ".dagster"
REPO_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"
THREADS_ENV = "CONSENTGEN_TORCH_THREADS"


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
    sweep: SweepReport | None = None  # what the run's opening sweep found and did


def report_of(result: dg.ExecuteInProcessResult | dg.JobExecutionResult) -> BuildReport:
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    version = None
    retrained: int | None = None
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        if event.asset_key == dg.AssetKey("release"):
            version = meta["version"].value
        if shard_of_key(event.asset_key) is not None:
            retrained = (retrained or 0) + int(meta["retrained"].value)
    failure = None
    if not result.success or version is None:
        failed_checks = [name for name, ok in checks.items() if not ok]
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        if failed_checks:
            failure = f"blocking check(s) failed: {', '.join(failed_checks)}"
        elif failures:
            failure = f"step {failures[0].step_key} failed: {_root_cause(failures[0].step_failure_data.error)}"
        else:
            failure = "the run published no release"
    return BuildReport(result.success and version is not None, result.run_id, version, checks,
                       retrained, failure)


def _root_cause(error: object) -> str:
    """The message of the innermost error that is ours (e.g. a CatalogError), without its
    class name: not Dagster's wrapper, nor what ours was raised from (a HomeLockedError's
    BlockingIOError). Else the innermost error's message."""
    ours = {cls.__name__ for cls in _subclasses(ConsentgenError)}
    innermost = innermost_ours = None
    while error is not None:
        innermost = error
        if getattr(error, "cls_name", None) in ours:
            innermost_ours = error
        error = getattr(error, "cause", None)
    if innermost_ours is None:
        return (getattr(innermost, "message", None) or "unknown").strip()
    text = (innermost_ours.message or "").strip()  # "consentgen.errors.X: what happened"
    head, _, rest = text.partition(": ")
    return rest if head.endswith(innermost_ours.cls_name) and rest else text


def _subclasses(cls: type) -> set[type]:
    out = {cls}
    for sub in cls.__subclasses__():
        out |= _subclasses(sub)
    return out


def run_build(home: Path, config: BuildConfig, *, shards: list[int] | None = None,
              instance: dg.DagsterInstance | None = None, progress: bool = False,
              selection: dg.AssetSelection | None = None, log_level: str = "WARNING",
              parallel: int = 1) -> BuildReport:
    """One run of the build job over `shards` (default: all of them).

    `selection` narrows the run further (e.g. everything up to the audit). `parallel` > 1
    runs it under the multiprocess executor with that many steps at once; that needs a
    persistent instance (the default, `<home>/.dagster`), since each step's process
    reads the run from it.

    The run holds the home's build lock throughout: a second build on the same home is
    refused at once (`HomeLockedError`, one line naming this build's pid and run id)
    before it trains anything. It starts with a sweep of what crashed runs left (a
    pending release, an unrecorded checkpoint or candidate, temp folders).
    """
    build_id = str(uuid.uuid4())  # the in-process run's id; a tag on a multiprocess run
    with build_lock(home, run_id=build_id):
        swept = sweep(Catalog(home), build_locked=True)
        report = _execute(home, config, build_id, shards=shards, instance=instance,
                          progress=progress, selection=selection, log_level=log_level,
                          parallel=parallel)
    report.sweep = swept
    return report


def _execute(home: Path, config: BuildConfig, build_id: str, *, shards: list[int] | None,
             instance: dg.DagsterInstance | None, progress: bool,
             selection: dg.AssetSelection | None, log_level: str, parallel: int) -> BuildReport:
    defs = make_definitions(config, home, progress=progress)
    graph = defs.resolve_asset_graph()
    keys = shards_selection(graph.get_all_asset_keys(),
                            shards if shards is not None else range(config.shards))
    if selection is not None:
        keys = sorted(set(keys) & selection.resolve(graph))
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    instance = instance or instance_for(home)
    tags = {BUILD_TAG: build_id}  # the steps see that this run's runner holds the lock
    if parallel <= 1:
        result = defs.resolve_job_def(BUILD_JOB).execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False, asset_selection=keys,
            run_id=build_id, tags=tags)
        return report_of(result)
    job = dg.build_reconstructable_job(
        "pipelines.defs.definitions", "reconstruct_build_job",
        reconstructable_args=(config.model_dump_json(), str(home), progress))
    run_config["execution"] = {"config": {"multiprocess": {"max_concurrent": parallel}}}
    with _threads_per_step(parallel), dg.execute_job(
            job, instance, run_config=run_config, asset_selection=keys, tags=tags) as result:
        return report_of(result)


@contextmanager
def _threads_per_step(parallel: int) -> Iterator[None]:
    """Give each of `parallel` step processes its share of the CPUs (unless set already)."""
    if THREADS_ENV in os.environ:
        yield
        return
    os.environ[THREADS_ENV] = str(max(1, (os.cpu_count() or 1) // parallel))
    try:
        yield
    finally:
        os.environ.pop(THREADS_ENV, None)


_STEP_MARKS = {"STEP_WORKER_STARTING": "launched", "STEP_START": "start",
               "STEP_SUCCESS": "end", "STEP_FAILURE": "end"}


def step_timeline(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, float]]:
    """Per step key: when its process was launched (multiprocess only), started and
    ended (epoch seconds), from the run's event log; `bench/build.py` reads it."""
    out: dict[str, dict[str, float]] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        mark = _STEP_MARKS.get(event.event_type_value) if event and event.step_key else None
        if mark:
            out.setdefault(event.step_key, {})[mark] = entry.timestamp
    return out


@dataclass
class SensorTick:
    cursor: int
    shards: list[int]
    run_keys: list[str]


def tick_revocation_sensor(home: Path, config: BuildConfig, *, cursor: int = 0,
                           instance: dg.DagsterInstance | None = None) -> SensorTick:
    """Evaluate the revocation sensor once through Dagster's own test API.

    The sensor reconciles (its side effect: whatever consent no longer covers is
    withdrawn, whatever `cursor` says); the returned shards are those its run request
    asks to rebuild, which the caller may run with `run_build(shards=...)`, and the
    returned cursor is the ledger head it saw.
    """
    defs = make_definitions(config, home)
    sensor = defs.resolve_sensor_def("revocation_sensor")
    with dg.build_sensor_context(instance=instance or instance_for(home), cursor=str(cursor),
                                 resources=defs.resources, definitions=defs) as context:
        result = sensor(context)
    requests = result.run_requests or []
    shards = sorted({s for r in requests for s in selected_shards(r.asset_selection or [])})
    return SensorTick(int(result.cursor), shards, [r.run_key for r in requests])
