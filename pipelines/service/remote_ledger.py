"""`ServiceLedger`: the `consent.Ledger` API over the running consent service.

While `consentgen serve` runs it holds consent.duckdb open for writing, and DuckDB then
refuses every other process's open of the file, read-only ones too: a CLI command, a
build's snapshot or the daemon's sensor would wait out their bounded retry and fail. So
outside the service they read and append through its API instead, with the same calls
and the same types back (`LedgerEvent`, `ConsentState`, `Head`, `AppendResult`), and the
code above them (the steps, the exports, the reconcile) runs unchanged. Every call is one
or a few requests under the home's owner token (from service.json), each in the
service's access log.

`client.ledger_at(home)` chooses between this, the service's own held ledger and the
file; nothing else should construct one.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa

from consent.canonical import GENESIS_HASH
from consent.events import ConsentEvent, LedgerEvent, subject_key
from consent.integrity import _head_problem  # the local verify's wording, kept identical
from consent.ledger import Ledger
from consent.queries import moment
from consent.rows import TIME_COLUMNS, Head
from consent.state import ConsentState, ConsentStatus
from consent.store import EVENT_COLUMNS
from consent.writer import AppendResult, LedgerWriter
from consentgen.errors import LedgerError, LedgerIntegrityError, ServiceError
from pipelines.service.client import ServiceClient

PAGE = 10_000
"""Events asked for per request (the service's largest page, routes_consent.MAX_PAGE)."""

_ARROW_TYPES = {"seq": pa.int64(), **{name: pa.timestamp("us", tz="UTC") for name in TIME_COLUMNS}}
ARROW_SCHEMA = pa.schema([(name, _ARROW_TYPES.get(name, pa.string())) for name in EVENT_COLUMNS])
"""`consent.queries.events_arrow`'s schema: an export through the service is the same file."""


class ServiceLedger(Ledger):
    """The ledger at `path`, read and appended through `client` (see the module docstring).

    Owns the client: `close()` (or a `with` block, or garbage collection) closes its
    connections, so a long-lived process that asks for many does not leak sockets.
    """

    def __init__(self, client: ServiceClient, path: str | Path) -> None:
        super().__init__(path)
        self.client = client
        self._finalizer = weakref.finalize(self, client.close)

    def __repr__(self) -> str:
        return f"ServiceLedger({self.client.info.url!r}, {str(self.path)!r})"

    def __enter__(self) -> ServiceLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._finalizer()

    @property
    def url(self) -> str:
        return self.client.info.url

    # --- writing -------------------------------------------------------------------------

    def init(self) -> Head:
        """The ledger exists already: the service made it when it started."""
        return self.head()

    def append_many(self, events: Iterable[ConsentEvent]) -> AppendResult:
        """One request, one transaction of the service: all of `events`, or none."""
        asked = list(events)
        if not asked:
            return AppendResult(head=self.head())
        answer = self.client.request("POST", "/v1/consent/events", params={"whole": "true"},
                                     json=[e.model_dump(mode="json") for e in asked])
        refs: list[dict[str, Any]] = answer["events"]
        n = int(answer["appended"])
        if all("prev_hash" in r for r in refs):  # the answer carries whole events
            stored = {int(r["seq"]): event_from_json(r) for r in refs}
        else:  # only their ids, sequence numbers and hashes: read the rest back
            stored = self._by_seq(sorted({int(r["seq"]) for r in refs}))
        return AppendResult(appended=[stored[int(r["seq"])] for r in refs[:n]],
                            already_present=[stored[int(r["seq"])] for r in refs[n:]],
                            head=head_from_json(answer["head"]))

    @contextmanager
    def writer(self) -> Iterator[LedgerWriter]:
        raise LedgerError(f"the consent service at {self.url} holds the ledger: append through "
                          "it (append_many), not with a kept-open writer")
        yield  # pragma: no cover

    # --- reading -------------------------------------------------------------------------

    def head(self) -> Head:
        return head_from_json(self.client.get("/v1/consent/head"))

    def state(
        self, subject_id: str, purpose: str, at: datetime | None = None, *, as_of_seq: int | None = None
    ) -> ConsentState:
        when = moment(at)
        subject = subject_key(subject_id)
        if "/" not in subject:  # a path segment cannot hold one (it would be routed apart)
            found = self.client.get(f"/v1/consent/subjects/{quote(subject, safe='')}",
                                    purpose=purpose, at=_iso(when), as_of_seq=as_of_seq)
            if as_of_seq is None or found.get("as_of_seq") == as_of_seq:
                return state_from_json(found, purpose)
        # as of a sequence number (a service that does not echo it ignores it), or an id
        # with a slash: the purpose's states, of which this subject's
        for state in self.states(purpose, when, as_of_seq=as_of_seq):
            if state.subject_id == subject:
                return state
        return ConsentState(subject, purpose, when, ConsentStatus.UNKNOWN, None)

    def states(
        self, purpose: str, at: datetime | None = None, *, as_of_seq: int | None = None
    ) -> list[ConsentState]:
        found = self.client.get("/v1/consent/states", purpose=purpose, at=_iso(moment(at)),
                                as_of_seq=as_of_seq)
        return [state_from_json(s, purpose) for s in found]

    def eligible(
        self, purpose: str, at: datetime | None = None, *, as_of_seq: int | None = None
    ) -> list[str]:
        return list(self.client.get("/v1/consent/eligible", purpose=purpose,
                                    at=_iso(moment(at)), as_of_seq=as_of_seq))

    def events(
        self,
        *,
        subject_id: str | None = None,
        purpose: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[LedgerEvent]:
        """Page through GET /v1/consent/events until `limit` or the end."""
        out: list[LedgerEvent] = []
        cursor = after_seq
        while limit is None or len(out) < limit:
            want = PAGE if limit is None else min(PAGE, limit - len(out))
            page = self.client.get("/v1/consent/events", after_seq=cursor, limit=want,
                                   subject_id=subject_id, purpose=purpose)
            out += [event_from_json(e) for e in page["events"]]
            if page.get("next_after_seq") is None or not page["events"]:
                break
            cursor = int(page["next_after_seq"])
        return out

    def purposes(self) -> list[str]:
        return list(self.client.get("/v1/consent/purposes"))

    def to_arrow(self) -> pa.Table:
        """Every event as `consent.queries.events_arrow` builds it (times as UTC)."""
        events = self.events()
        columns: dict[str, list[Any]] = {name: [] for name in EVENT_COLUMNS}
        for event in events:
            for name in EVENT_COLUMNS:
                columns[name].append(getattr(event, name))
        columns["action"] = [str(a.value) for a in columns["action"]]
        return pa.table(columns, schema=ARROW_SCHEMA)

    # --- integrity -----------------------------------------------------------------------

    def verify(
        self, anchor: Head | None = None, *, anchors: Mapping[str, Head] | None = None
    ) -> Head:
        """The service recomputes the chain and its heads log (`releases=false`: only the
        anchors asked for count, as for a file); each anchor is then looked up in that chain
        here, so a caller's named anchors (e.g. every release's head) are checked whatever
        the service knows of them. As locally, the problem with the lowest sequence number
        is the one raised, and a failing anchor is named."""
        named: dict[str | None, Head] = dict(anchors or {})
        if anchor is not None:
            named[None] = Head(int(anchor.seq), anchor.hash)
        chain_problem: LedgerIntegrityError | None = None
        head: Head | None = None
        try:
            head = head_from_json(self.client.get("/v1/consent/verify", releases="false")["head"])
        except LedgerIntegrityError as exc:
            chain_problem = exc
        if named:
            last = head.seq if head is not None else self.head().seq
            found = [p for p in (chain_problem, *self._anchor_problems(named, last)) if p is not None]
            if found:
                raise min(found, key=lambda p: p.seq)
        if chain_problem is not None:
            raise chain_problem
        assert head is not None
        return head

    def _anchor_problems(self, anchors: Mapping[str | None, Head], last_seq: int) -> list[LedgerIntegrityError]:
        out = []
        hashes: dict[int, str | None] = {}
        for name, head in anchors.items():
            if head.seq not in hashes:
                hashes[head.seq] = self._hash_at(head.seq)
            found = hashes[head.seq]
            if found != head.hash:
                what = (f"the head {name} recorded" if name else "the anchored head") + f" (sequence {head.seq})"
                out.append(_head_problem(what, head.seq, head.hash, found, last_seq))
        return out

    def _hash_at(self, seq: int) -> str | None:
        if seq == 0:
            return GENESIS_HASH
        found = self.events(after_seq=seq - 1, limit=1)
        return found[0].hash if found and found[0].seq == seq else None

    def _by_seq(self, seqs: list[int]) -> dict[int, LedgerEvent]:
        """The events at these sequence numbers, one request per run of consecutive ones."""
        out: dict[int, LedgerEvent] = {}
        i = 0
        while i < len(seqs):
            j = i
            while j + 1 < len(seqs) and seqs[j + 1] == seqs[j] + 1:
                j += 1
            for event in self.events(after_seq=seqs[i] - 1, limit=j - i + 1):
                out[event.seq] = event
            i = j + 1
        missing = [s for s in seqs if s not in out]
        if missing:
            raise ServiceError(f"the consent service acknowledged event(s) {missing[:5]} but "
                               "does not list them")
        return out

    # --- no file here ----------------------------------------------------------------------

    def _reader(self):  # noqa: ANN202 - never a connection: the service holds the file
        raise LedgerError(f"the consent service at {self.url} holds the ledger: read through it")

    def _writable(self):  # noqa: ANN202
        raise LedgerError(f"the consent service at {self.url} holds the ledger: append through it")


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _utc(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


def event_from_json(data: Mapping[str, Any]) -> LedgerEvent:
    """A `LedgerEvent` from its `public_dict()` JSON (times back in `datetime.UTC`)."""
    fields = {name: data[name] for name in EVENT_COLUMNS}
    for name in TIME_COLUMNS:
        fields[name] = _utc(fields[name])
    return LedgerEvent.model_validate(fields)


def head_from_json(data: Mapping[str, Any]) -> Head:
    return Head(int(data["seq"]), str(data["hash"]))


def state_from_json(data: Mapping[str, Any], purpose: str) -> ConsentState:
    deciding = data.get("deciding_event")
    return ConsentState(
        subject_id=data["subject_id"], purpose=data.get("purpose", purpose),
        at=_utc(data["at"]),  # type: ignore[arg-type]
        status=ConsentStatus(str(data["status"]).removeprefix("dpv:")),
        deciding_event=event_from_json(deciding) if deciding else None,
    )
