"""The C2PA manifest store embedded in a JPEG or PNG, read offline with c2pa-python.

Two readers need it: ingest, which honours a source's training-mining opt-out and refuses
AI-generated inputs, and the release gate (and `consentgen verify-image`), which checks
that a published image carries our manifest and nothing else. Both need the assertions
even of a manifest that fails validation (an opt-out counts when the signature does
not: fail closed), so this module returns what the SDK read *and* what it found wrong,
and leaves the judging to its callers.

Nothing here touches the network: remote manifests and OCSP are not fetched, and trust
is judged only against the PEM anchors a caller passes (a deployment's own CA).
A file without any JUMBF box is answered without calling the SDK at all, so plain
files cost one byte search.
"""

from __future__ import annotations

import io
import json
from functools import lru_cache
from typing import Any

import c2pa
from pydantic import BaseModel, ConfigDict

from validation.sources.pixels import short_error

MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg"}
"""The containers ingest decodes that can carry a C2PA store (DICOM cannot)."""

UNTRUSTED = "signingCredential.untrusted"
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


def has_jumbf(data: bytes) -> bool:
    """Whether the bytes may hold a C2PA store (a JUMBF superbox labelled c2pa)."""
    return b"jumb" in data and b"c2pa" in data


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
