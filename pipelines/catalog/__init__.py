"""The pipeline catalog (`<home>/catalog.duckdb`): its tables, the store, and every lineage query.

`schema` declares each table once, `store` opens the file and reads and writes rows,
`lineage` answers "which subjects stand behind this image, which images stand on this
subject". Nothing here imports Dagster or the build steps.
"""

from pipelines.catalog.schema import (
    SCHEMA_VERSION,
    TABLES,
    AuditRow,
    Ban,
    Candidate,
    EligibleRecord,
    Erasure,
    Exclusion,
    IngestRun,
    ModelRecord,
    QuarantineEntry,
    Release,
    ReleaseImage,
    Row,
    ShardModel,
    Snapshot,
    SnapshotClass,
    SourceRecord,
    Withdrawal,
)
from pipelines.catalog.store import SOURCES_DIR, Catalog

__all__ = [
    "AuditRow",
    "Ban",
    "Candidate",
    "Catalog",
    "EligibleRecord",
    "Erasure",
    "Exclusion",
    "IngestRun",
    "ModelRecord",
    "QuarantineEntry",
    "Release",
    "ReleaseImage",
    "Row",
    "SCHEMA_VERSION",
    "SOURCES_DIR",
    "ShardModel",
    "Snapshot",
    "SnapshotClass",
    "SourceRecord",
    "TABLES",
    "Withdrawal",
]
