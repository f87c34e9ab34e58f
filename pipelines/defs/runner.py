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

from consentgen.errors import BuildInputError, ConsentgenError
from pipelines.catalog import Catalog
from pipelines.defs.assets import BUILD_TAG, shard_of_key
from pipelines.defs.definitions import make_definitions
from pipelines.defs.jobs import BUILD_JOB, selected_shards, shards_selection
from pipelines.defs.logs import run_log_path, run_loggers
from pipelines.service.client import ledger_at
from pipelines.settings import BuildConfig
from pipelines.steps.freshness import unchanged_since
from pipelines.steps.locks import build_lock
from pipelines.steps.sweep import SweepReport, sweep

DAGSTER_DIR = ".dagster"
REPO_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"
THREADS_ENV = "CONSENTGEN_TORCH_THREADS"
UI_PORT = 3000  # `consentgen ui`'s default port, for the page a blocked build names


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
    failure: str | None = None  # one line: why nothing was published
    sweep: SweepReport | None = None  # what the run's opening sweep found and did
    unchanged_since: str | None = None  # no run: the newest release has these very inputs
    log_path: Path | None = None  # the run's full log (the runner's runs)


def report_of(result: dg.ExecuteInProcessResult | dg.JobExecutionResult) -> BuildReport:
    evaluations = result.get_asset_check_evaluations()
    checks = {e.check_name: e.passed for e in evaluations}
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
        blocked = [e for e in evaluations if not e.passed]
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        if blocked:
            failure = blocked_line(blocked, result.run_id)
        elif failures:
            failure = failure_line(failures[0].step_key, failures[0].step_failure_data.error)
        else:
            failure = "the run published no release"
    return BuildReport(result.success and version is not None, result.run_id, version, checks,
                       retrained, failure)


def blocked_line(blocked: list, run_id: str) -> str:
    """Which blocking check stopped the release and its finding (how many images, the worst
    offender against its threshold: `pipelines.steps.checks`), then where to look."""
    first = blocked[0]
    text = (first.description or "failed").rstrip(".")
    others = [e.check_name for e in blocked[1:]]
    also = f" (also blocked by {', '.join(others)})" if others else ""
    return (f"release blocked by check {first.check_name}: {text}{also}; run {run_id}: "
            f"`consentgen ui`, then {ui_run_url(run_id)}")


def ui_run_url(run_id: str, port: int = UI_PORT) -> str:
    return f"http://127.0.0.1:{port}/runs/{run_id}"


def failure_line(step: str | None, error: object) -> str:
    """A failed step's one line: a build-input error (no eligible records, too few for the
    shards or classes) is its own message; any other error says which step it stopped."""
    cls_name, message = _root_cause(error)
    message = " ".join(message.split())  # one line, whatever the error's text held
    if cls_name in {c.__name__ for c in _subclasses(BuildInputError)}:
        return message
    return f"step {step} failed: {message}"


def _root_cause(error: object) -> tuple[str | None, str]:
    """The class name and message of the innermost error that is ours (e.g. a CatalogError),
    the message without its class name: not Dagster's wrapper, nor what ours was raised
    from (a HomeLockedError's BlockingIOError). Else (None, the innermost error's message)."""
    ours = {cls.__name__ for cls in _subclasses(ConsentgenError)}
    innermost = innermost_ours = None
    while error is not None:
        innermost = error
        if getattr(error, "cls_name", None) in ours:
            innermost_ours = error
        error = getattr(error, "cause", None)
    if innermost_ours is None:
        return None, (getattr(innermost, "message", None) or "unknown").strip()
    text = (innermost_ours.message or "").strip()  # "consentgen.errors.X: what happened"
    head, _, rest = text.partition(": ")
    return innermost_ours.cls_name, rest if head.endswith(innermost_ours.cls_name) and rest else text


def _subclasses(cls: type) -> set[type]:
    out = {cls}
    for sub in cls.__subclasses__():
        out |= _subclasses(sub)
    return out


def run_build(home: Path, config: BuildConfig, *, shards: list[int] | None = None,
              instance: dg.DagsterInstance | None = None, progress: bool = False,
              selection: dg.AssetSelection | None = None, log_level: str = "DEBUG",
              parallel: int = 1, force: bool = False, show_steps: bool = False) -> BuildReport:
    """One run of the build job over `shards` (default: all of them).

    `selection` narrows the run further (e.g. everything up to the audit). `parallel` > 1
    runs it under the multiprocess executor with that many steps at once; that needs a
    persistent instance (the default, `<home>/.dagster`), since each step's process
    reads the run from it.

    The run holds the home's build lock throughout: a second build on the same home is
    refused at once (`HomeLockedError`, one line naming this build's pid and run id)
    before it trains anything. It starts with a sweep of what crashed runs left (a
    pending release, an unrecorded checkpoint or candidate, temp folders). Then, for a
    run that would publish, unless `force`: when the consent state, the sources and the
    settings are those the newest release was built from, nothing runs and the report
    says `unchanged_since` that version (`pipelines.steps.freshness`).

    The run's full log (`log_level`, stack traces included) goes to `report.log_path`
    and its event log, never to the terminal; `show_steps` prints one line per finished
    step and check on stdout. `progress` shows the training and sampling bars.
    """
    build_id = str(uuid.uuid4())  # the in-process run's id; a tag on a multiprocess run
    with build_lock(home, run_id=build_id):
        catalog = Catalog(home)
        swept = sweep(catalog, build_locked=True)
        defs = make_definitions(config, home, progress=progress)
        keys = _selected_keys(defs, config, shards, selection)
        since = None
        if not force and dg.AssetKey("release") in keys:
            since = unchanged_since(catalog, ledger_at(home), config)
        if since is not None:
            report = BuildReport(True, build_id, None, unchanged_since=since)
        else:
            report = _execute(home, config, defs, keys, build_id, instance=instance,
                              progress=progress, log_level=log_level, parallel=parallel,
                              show_steps=show_steps)
    report.sweep = swept
    return report


def _selected_keys(defs: dg.Definitions, config: BuildConfig, shards: list[int] | None,
                   selection: dg.AssetSelection | None) -> list[dg.AssetKey]:
    graph = defs.resolve_asset_graph()
    keys = shards_selection(graph.get_all_asset_keys(),
                            shards if shards is not None else range(config.shards))
    if selection is not None:
        keys = sorted(set(keys) & selection.resolve(graph))
    return keys


def _execute(home: Path, config: BuildConfig, defs: dg.Definitions, keys: list[dg.AssetKey],
             build_id: str, *, instance: dg.DagsterInstance | None, progress: bool,
             log_level: str, parallel: int, show_steps: bool) -> BuildReport:
    log_path = run_log_path(dagster_home(home), build_id)
    run_config: dict = {"loggers": run_loggers(log_path, log_level=log_level, steps=show_steps)}
    instance = instance or instance_for(home)
    tags = {BUILD_TAG: build_id}  # the steps see that this run's runner holds the lock
    if parallel <= 1:
        result = defs.resolve_job_def(BUILD_JOB).execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False, asset_selection=keys,
            run_id=build_id, tags=tags)
        report = report_of(result)
    else:
        job = dg.build_reconstructable_job(
            "pipelines.defs.definitions", "reconstruct_build_job",
            reconstructable_args=(config.model_dump_json(), str(home), progress))
        run_config["execution"] = {"config": {"multiprocess": {"max_concurrent": parallel}}}
        with _threads_per_step(parallel), dg.execute_job(
                job, instance, run_config=run_config, asset_selection=keys, tags=tags) as result:
            report = report_of(result)
    report.log_path = log_path
    return report


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
