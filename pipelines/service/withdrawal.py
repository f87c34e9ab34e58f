"""The withdrawal a revoke accepted by the service runs at once (DESIGN invariant 2).

The same reconcile as the sensor's and `consentgen reconcile`, inside the service (it
reads the ledger through the service's own connection); the catalog records each image's
latency from the revoke to its withdrawal. The rebuild of the shards that saw the subject
is a build: it waits for the daemon's sensor or `consentgen reconcile --rebuild`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from consent import Ledger
from consentgen.home import catalog_path


def prepare() -> None:
    """Import what a pass runs (the catalog, the reconcile, the card it redraws: about a
    second on this machine), so that the first revoke after start does not wait for it."""
    import pipelines.buildfile  # noqa: F401
    import pipelines.catalog  # noqa: F401
    import pipelines.steps.reconcile  # noqa: F401
    import pipelines.steps.release_files  # noqa: F401


def withdraw_subjects(home: Path, ledger: Ledger, subjects: Sequence[str]) -> tuple[int, str]:
    """Withdraw what the consent of `subjects` no longer covers; (images withdrawn, report).

    One subject: that subject's pass. Several (revokes that queued while a pass ran): one
    whole pass, which withdraws every subject not eligible now, them included, for the
    cost of one pass instead of one each.
    """
    from pipelines.buildfile import load_config_leniently
    from pipelines.catalog import Catalog
    from pipelines.steps.reconcile import reconcile

    if not catalog_path(home).exists():
        return 0, "no catalog in this home yet: nothing published to withdraw"
    config, _ = load_config_leniently(home)
    only = subjects[0] if len(subjects) == 1 else None
    report = reconcile(Catalog(home), ledger, config, subject_id=only)
    return report.count, report.line()


def withdraw_subject(home: Path, ledger: Ledger, subject_id: str) -> tuple[int, str]:
    """`withdraw_subjects` for one subject."""
    return withdraw_subjects(home, ledger, [subject_id])
