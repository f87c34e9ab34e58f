"""The withdrawal a revoke accepted by the service runs at once (DESIGN invariant 2).

The same reconcile as the sensor's and `consentgen reconcile`, for one subject, inside the
service (it reads the ledger through the service's own connection); the catalog records
each image's latency from the revoke to its withdrawal. The rebuild of the shards that
saw the subject is a build: it waits for the daemon's sensor or `consentgen reconcile
--rebuild`.
"""

from __future__ import annotations

from pathlib import Path

from consent import Ledger
from consentgen.home import catalog_path


def withdraw_subject(home: Path, ledger: Ledger, subject_id: str) -> tuple[int, str]:
    """Withdraw what `subject_id`'s consent no longer covers; (images withdrawn, report)."""
    from pipelines.buildfile import load_config_leniently
    from pipelines.catalog import Catalog
    from pipelines.steps.reconcile import reconcile

    if not catalog_path(home).exists():
        return 0, "no catalog in this home yet: nothing published to withdraw"
    config, _ = load_config_leniently(home)
    report = reconcile(Catalog(home), ledger, config, subject_id=subject_id)
    return report.count, report.line()
