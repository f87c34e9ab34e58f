"""The consent ledger: append-only, hash-chained consent events in DuckDB.

    from consent import Ledger, ConsentEvent
    ledger = Ledger.at_home()                 # $CONSENTGEN_HOME/consent.duckdb
    ledger.grant("subject-1", "synthetic-training", actor="officer-7")
    ledger.eligible("synthetic-training")     # -> ["subject-1"]
    ledger.verify()                           # -> Head(seq, hash), or LedgerIntegrityError

No torch, no Dagster: the system of record stays small enough to audit.
"""

from consent.canonical import GENESIS_HASH, canonical_bytes, chain_hash
from consent.events import Action, ConsentEvent, LedgerEvent
from consent.exchange import export, import_events, iso27560_records, read_events
from consent.ledger import AppendResult, Head, Ledger
from consent.state import ConsentState, ConsentStatus

__all__ = [
    "GENESIS_HASH",
    "Action",
    "AppendResult",
    "ConsentEvent",
    "ConsentState",
    "ConsentStatus",
    "Head",
    "Ledger",
    "LedgerEvent",
    "canonical_bytes",
    "chain_hash",
    "export",
    "import_events",
    "iso27560_records",
    "read_events",
]
