"""The refresh schedule: a whole new build on a cron (new snapshot, expiries honoured),
skipped when nothing it depends on changed since the newest release."""


import os

import dagster as dg

from pipelines.defs.jobs import BUILD_JOB
from pipelines.defs.resources import BuildSettings, CatalogResource, LedgerResource
from pipelines.defs.sensors import REASON_TAG
from pipelines.settings import CRON_ENV, ScheduleSettings


def refresh_schedule(asset_keys: list[dg.AssetKey],
                     settings: ScheduleSettings | None = None) -> dg.ScheduleDefinition:
    """The build file's `[schedule]` (`$CONSENTGEN_REFRESH_CRON` overrides its cron).

    A tick whose consent state, sources and settings are those of the newest release is
    skipped (`pipelines.steps.freshness`): a nightly refresh of an unchanged dataset would
    otherwise mint an identical release every night.
    """
    settings = settings or ScheduleSettings()
    status = dg.DefaultScheduleStatus.RUNNING if settings.enabled else dg.DefaultScheduleStatus.STOPPED

    @dg.schedule(name="refresh_schedule", job_name=BUILD_JOB,
                 cron_schedule=os.environ.get(CRON_ENV) or settings.cron, execution_timezone="UTC",
                 default_status=status,
                 description="Refreshes the whole dataset (new snapshot, expiries honoured) "
                             "unless nothing changed since the newest release.")
    def _schedule(context: dg.ScheduleEvaluationContext, catalog: CatalogResource,
                  ledger: LedgerResource, settings: BuildSettings) -> dg.RunRequest | dg.SkipReason:
        from pipelines.steps.freshness import unchanged_since

        since = unchanged_since(catalog.catalog(), ledger.ledger(), settings.config())
        if since is not None:
            return dg.SkipReason(f"nothing changed since {since}")
        return dg.RunRequest(run_key=f"refresh-{context.scheduled_execution_time:%Y%m%dT%H%M}",
                             asset_selection=sorted(asset_keys), tags={REASON_TAG: "refresh"})

    return _schedule
