"""What the ingested sources look like, for the `sources` asset's metadata."""

from __future__ import annotations

from collections import Counter
from typing import Any

from consentgen.labels import sorted_labels
from pipelines.catalog import Catalog


def sources_summary(catalog: Catalog) -> dict[str, Any]:
    sources = catalog.sources()
    counts = Counter(s.label for s in sources)
    quarantined = catalog.quarantined()
    return {
        "records": len(sources),
        "subjects": len({s.subject_id for s in sources}),
        "labels": {label: counts[label] for label in sorted_labels(k for k in counts if k)}
                  | ({"(none)": counts[None]} if None in counts else {}),
        "simulated_records": sum(s.simulated for s in sources),
        "quarantined": len(quarantined),
        "quarantined_by_reason": dict(Counter(q.reason for q in quarantined)),
    }
