"""The C2PA manifest store embedded in a JPEG or PNG, read offline with c2pa-python.

Two readers need it: ingest, which honours a source's training-mining opt-out and refuses
AI-generated inputs, and the release gate (and `consentgen verify-image`), which checks
that a published image carries our manifest and nothing else. Both need the assertions
even of a manifest that fails validation (an opt-out counts when the signature does
not: fail closed), so this module returns what the SDK read *and* what it found wrong,
and leaves the judging to its callers.

Nothing here touches the network: remote manifests and OCSP are not fetched, and trust
is judged only against the PEM anchors a caller passes (a deployment's own CA).
A file without a JUMBF description box (``jumd`` then ``c2pa``, the start of the
store's type UUID, or the tail every JUMBF type UUID shares) is answered without calling
the SDK at all, so plain files cost two byte searches. Where such a box is but the SDK finds no store (a ``caBX``
after IEND or under another chunk name, APP11 after EOI), or where there are several,
the SDK has not judged what the file holds, and ingest says so (`store_boxes`,
`store_spans`).
"""

from __future__ import annotations

import io
import json
import re
from functools import lru_cache
from typing import Any

import c2pa
from pydantic import BaseModel, ConfigDict

from validation.sources.containers import JPEG_SOI, PNG_SIGNATURE, jpeg_segments, png_chunks
from validation.sources.pixels import short_error

MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg"}
"""The containers ingest decodes that can carry a C2PA store (DICOM cannot)."""

UNTRUSTED = "signingCredential.untrusted"
STORE_BOX = b"jumdc2pa"
"""A JUMBF description box whose type UUID starts ``c2pa``: the manifest store's."""
JUMBF_UUID_TAIL = b"\x00\x11\x00\x10\x80\x00\x00\xaa\x00\x38\x9b\x71"
"""The last 12 bytes of every JUMBF content type UUID (the store's, each manifest's,
assertion store's, claim's, signature's, each CBOR or JSON box's): a store has one per
box, so a store whose own box type was damaged is still seen."""
_DAMAGED = re.compile(r"(\.cbor\.invalid|\.json\.invalid|\.missing|\.malformed|\.inaccessible"
                      r"|\.undeclared)$|^general\.error$")
_OFFLINE = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}


class C2paAssertion(BaseModel):
    """One assertion of a manifest, as the SDK reports it (label and JSON data)."""

    model_config = ConfigDict(frozen=True)

    label: str
    data: Any = None


class C2paManifest(BaseModel):
    """One manifest of a store: its assertions, what signed it, what it embeds."""

    model_config = ConfigDict(frozen=True)

    label: str
    assertions: tuple[C2paAssertion, ...] = ()
    ingredients: int = 0
    thumbnail: bool = False
    signer: dict[str, str] = {}
    """`issuer`, `common_name`, `cert_serial_number`, `alg` from the signature info."""
    claim_generator: tuple[str, ...] = ()

    def assertion(self, label: str) -> C2paAssertion | None:
        return next((a for a in self.assertions if a.label == label), None)


class C2paStore(BaseModel):
    """What a file's C2PA store says and whether it holds up."""

    model_config = ConfigDict(frozen=True)

    active: str | None = None
    manifests: tuple[C2paManifest, ...] = ()
    state: str | None = None
    """The SDK's verdict: ``Trusted`` (signed by a passed anchor), ``Valid`` (intact, signer
    not trusted), ``Invalid``; None when the store could not be read at all."""
    codes: tuple[str, ...] = ()
    """Every failure code the SDK reported (``assertion.dataHash.mismatch``, ...), the
    untrusted-signer one included."""
    error: str | None = None
    """Why the store could not be read (then `manifests` is empty)."""

    @property
    def active_manifest(self) -> C2paManifest | None:
        return next((m for m in self.manifests if m.label == self.active), None)

    @property
    def failures(self) -> tuple[str, ...]:
        """The codes that mean the content or the claim does not hold (not trust)."""
        return tuple(c for c in self.codes if c != UNTRUSTED)

    @property
    def damaged(self) -> tuple[str, ...]:
        """The failure codes that mean part of the store could not be read at all (an
        assertion whose CBOR does not parse, a missing or malformed box): what the
        manifests hold is then not all the store says."""
        return tuple(c for c in self.failures if _DAMAGED.search(c))


def has_jumbf(data: bytes) -> bool:
    """Whether the bytes may hold a C2PA store: a JUMBF description box of the store's
    type, or of any JUMBF type, wherever it sits (the SDK is asked; where it finds no
    store, the caller must not take the file for plain)."""
    return STORE_BOX in data or JUMBF_UUID_TAIL in data


def store_boxes(data: bytes) -> int:
    """How many C2PA stores the bytes hold (ingredients live inside the one store, so a
    file the SDK signed has one; the SDK reads only one of several)."""
    return data.count(STORE_BOX)


def store_spans(data: bytes) -> list[tuple[int, int]]:
    """The byte ranges where the SDK reads a store: a PNG's ``caBX`` chunks before IEND, a
    JPEG's APP11 JUMBF segments before the scan."""
    if data.startswith(PNG_SIGNATURE):
        return [c.span for c in png_chunks(data) if c.kind == b"caBX" and not c.after_end]
    if data.startswith(JPEG_SOI):
        return [s.span for s in jpeg_segments(data)
                if s.kind == b"\xeb" and data.startswith(b"JP", s.start)]
    return []


def read_c2pa(data: bytes, mime: str, *, trust_anchors: str | None = None) -> C2paStore | None:
    """The store embedded in `data` (a `mime` file), or None when it holds none.

    `trust_anchors` (PEM) makes the SDK judge the signer's chain against them; without it
    a well-signed store is ``Valid`` with the untrusted-signer code. Never raises: a
    store the SDK cannot parse comes back with `error` set.
    """
    if not has_jumbf(data):
        return None
    try:
        with c2pa.Reader(mime, io.BytesIO(data), context=_context(trust_anchors)) as reader:
            report = json.loads(reader.json())
            state = reader.get_validation_state()
    except c2pa.C2paError.ManifestNotFound:
        return None
    except Exception as exc:  # the SDK's typed errors and anything odd in a hostile file
        return C2paStore(error=f"{type(exc).__name__.lstrip('_')}: {short_error(exc)}")
    return _store(report, state)


@lru_cache(maxsize=8)
def _context(trust_anchors: str | None) -> c2pa.Context:
    """One SDK context per set of anchors: building one costs ~80 us, a tenth of a read."""
    settings: dict[str, Any] = {"verify": dict(_OFFLINE["verify"])}
    if trust_anchors:
        settings["trust"] = {"trust_anchors": trust_anchors}
        settings["verify"]["verify_trust"] = True
    return c2pa.Context(settings=c2pa.Settings.from_dict(settings))


def _store(report: dict[str, Any], state: str | None) -> C2paStore:
    manifests = tuple(
        _manifest(label, body)
        for label, body in (report.get("manifests") or {}).items()
        if isinstance(body, dict)
    )
    codes = [s.get("code", "") for s in report.get("validation_status") or []]
    results = (report.get("validation_results") or {}).get("activeManifest") or {}
    codes += [s.get("code", "") for s in results.get("failure") or []]
    return C2paStore(
        active=report.get("active_manifest"),
        manifests=manifests,
        state=state,
        codes=tuple(dict.fromkeys(c for c in codes if c)),
    )


def _manifest(label: str, body: dict[str, Any]) -> C2paManifest:
    info = body.get("signature_info") or {}
    generators = [g.get("name", "") for g in body.get("claim_generator_info") or []
                  if isinstance(g, dict)]
    return C2paManifest(
        label=label,
        assertions=tuple(
            C2paAssertion(label=str(a.get("label", "")), data=a.get("data"))
            for a in body.get("assertions") or []
            if isinstance(a, dict)
        ),
        ingredients=len(body.get("ingredients") or []),
        thumbnail=bool(body.get("thumbnail")),
        signer={k: str(v) for k, v in info.items() if isinstance(v, str | int)},
        claim_generator=tuple(g for g in generators if g),
    )
