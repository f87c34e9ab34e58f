"""Where a run's log goes when `consentgen build` runs it: a file, and one line per step.

Dagster's console logger prints every failure with its stack trace, which buries the one
reason a person needs under pages of frames. So a run started by the runner logs in full
(tracebacks included) to `<home>/.dagster/logs/<run_id>.log`, besides the run's event
log that `consentgen ui` shows, and at most one short line per finished step reaches the
terminal. A run the daemon or the UI launches configures no logger and gets Dagster's
console logger as before.

Both are plain logger definitions with string config, so the processes of a
multiprocess run rebuild them from the run config.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import dagster as dg

LOGS_DIR = "logs"
FILE_LOGGER = "consentgen_file"
STEPS_LOGGER = "consentgen_steps"
FORMAT = "%(asctime)s %(levelname)s %(message)s"
RECORD_META = "dagster_meta"  # where Dagster puts a log record's event and step


def run_log_path(dagster_dir: Path, run_id: str) -> Path:
    """`<home>/.dagster/logs/<run_id>.log`: the full log of one run."""
    return dagster_dir / LOGS_DIR / f"{run_id}.log"


@dg.logger(
    {"path": dg.Field(str, description="file the run's full log is appended to"),
     "log_level": dg.Field(str, is_required=False, default_value="DEBUG")},
    description="The run's full log (stack traces included) appended to a file.")
def file_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    path = Path(init_context.logger_config["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    log = logging.Logger(f"consentgen.run.{path.stem}", level=init_context.logger_config["log_level"])
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter(FORMAT))
    log.addHandler(handler)
    return log


class StepLines(logging.Handler):
    """One line on stdout per finished step and per check, from the Dagster event a
    record carries; every other record (messages, tracebacks) is left to the file. A
    check's step says no more than its check's line (passed or BLOCKED)."""

    def __init__(self) -> None:
        super().__init__()
        self.check_steps: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, RECORD_META, None) or {}
        event = meta.get("dagster_event")
        if event is None:
            return
        step = getattr(event, "step_key", None) or ""
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            self.check_steps.add(step)
        elif step in self.check_steps:
            return
        line = step_line(event)
        if line:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()


def step_line(event: object) -> str | None:
    """The short line for a Dagster event, None for events that get none."""
    kind = getattr(event, "event_type_value", None)
    step = getattr(event, "step_key", None) or ""
    if kind == "STEP_SUCCESS":
        seconds = getattr(event.event_specific_data, "duration_ms", 0) / 1000  # type: ignore[attr-defined]
        return f"  done     {step} ({seconds:.1f} s)"
    if kind == "STEP_FAILURE":
        return f"  failed   {step}"
    if kind == "STEP_SKIPPED":
        return f"  skipped  {step}"
    if kind == "ASSET_CHECK_EVALUATION":
        evaluation = event.event_specific_data  # type: ignore[attr-defined]
        return f"  {'passed' if evaluation.passed else 'BLOCKED':<8} check {evaluation.check_name}"
    return None


@dg.logger(config_schema=None, description="One short line per finished step and check, on stdout.")
def steps_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = logging.Logger("consentgen.steps", level=logging.DEBUG)
    log.addHandler(StepLines())
    return log


LOGGERS = {FILE_LOGGER: file_logger, STEPS_LOGGER: steps_logger, "console": dg.colored_console_logger}
"""Every job's loggers: `console` stays the default of runs that configure none."""


def run_loggers(log_path: Path, *, log_level: str = "DEBUG", steps: bool = False) -> dict[str, object]:
    """The `loggers` run config of a runner's run: the file, and the step lines if asked."""
    loggers: dict[str, object] = {FILE_LOGGER: {"config": {"path": str(log_path),
                                                           "log_level": log_level}}}
    if steps:
        loggers[STEPS_LOGGER] = {}
    return loggers
