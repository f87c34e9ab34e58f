"""What a source file declares about itself, read from its raw bytes before decoding strips it.

Consent is not only in the ledger (DESIGN.md invariant 1): an image can say "do not train
on me", and an AI-generated image can say what it is. Ingest re-encodes every source, so
these declarations are read here, from the bytes as they arrived, or never:

- C2PA (JPEG, PNG; `validation.sources.c2pa_store`): a `c2pa.training-mining` or its
  successor `cawg.training-mining` assertion in ANY manifest of the store (an ingredient's
  too, not only the active one) whose AI training, generative AI training or data mining
  entry has use ``notAllowed`` -> `TRAINING_OPT_OUT`. It counts even when the manifest fails
  validation (fail closed; the failure is named in the detail). ``ai_inference`` is not
  training (a note); ``constrained`` and ``allowed`` are notes: an allowed never overrides
  the ledger, which alone grants.
- XMP (`validation.sources.xmp`): ``plus:DataMining`` whose value's last path segment holds
  ``PROHIBITED`` (e.g. ``DMI-PROHIBITED-AIMLTRAINING``) -> `TRAINING_OPT_OUT`.
- A digitalSourceType (every action and template of every ``c2pa.actions`` /
  ``c2pa.actions.v2`` assertion, and XMP ``Iptc4xmpExt:DigitalSourceType``) of
  trainedAlgorithmicMedia, compositeWithTrainedAlgorithmicMedia or algorithmicMedia, by
  full IPTC URI or bare code -> `SYNTHETIC_INPUT`: training on another generator's output
  launders whatever it was trained on and degrades the model.
- DICOM BurnedInAnnotation (0028,0301) = YES -> `BURNED_IN_ANNOTATION`: text in the pixels
  (names, ids, dates) that no metadata stripping removes. `ProvenanceConfig` may accept it
  instead, with a note on the record.
- A provenance block that cannot be read at all (a C2PA store the SDK cannot parse, an
  XMP packet defusedxml refuses: a DTD, an entity declaration, broken XML, an incomplete
  extended XMP, an oversize packet; a training-mining assertion of unknown shape) ->
  `PROVENANCE_UNREADABLE`: we cannot see whether it says no, so we do not train on it.
  A file whose XMP points at a remote C2PA manifest (``dcterms:provenance``) and embeds
  none is unreadable too: ingest never fetches (no network at run time), and the
  manifest it points at may hold an opt-out.

When several apply, the verdict's reason is the first in `PRECEDENCE` (opt-out, synthetic,
burned-in, unreadable: what the rights holder said outranks what we infer); the detail
names it first and the others after. `read_provenance` never raises: a failure of its
own is `PROVENANCE_UNREADABLE` too. Plain files cost two byte searches (no SDK call).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from validation.sources.c2pa_store import C2paStore, read_c2pa
from validation.sources.pixels import short_error
from validation.sources.xmp import XmpReading, read_xmp

TRAINING_OPT_OUT = "training_opt_out"
SYNTHETIC_INPUT = "synthetic_input"
BURNED_IN_ANNOTATION = "burned_in_annotation"
PROVENANCE_UNREADABLE = "provenance_unreadable"
PRECEDENCE = (TRAINING_OPT_OUT, SYNTHETIC_INPUT, BURNED_IN_ANNOTATION, PROVENANCE_UNREADABLE)
"""Quarantine reasons, strongest first (never rename: catalog rows keep them)."""
ERROR_CLASSES = {
    TRAINING_OPT_OUT: "ProvenanceOptOut",
    SYNTHETIC_INPUT: "SyntheticInput",
    BURNED_IN_ANNOTATION: "BurnedInAnnotation",
    PROVENANCE_UNREADABLE: "ProvenanceUnreadable",
}

TRAINING_KEYS = frozenset({"ai_training", "ai_generative_training", "data_mining"})
"""Training-mining entries that mean training (``ai_inference`` does not)."""
SYNTHETIC_SOURCE_TYPES = frozenset(
    {"trainedalgorithmicmedia", "compositewithtrainedalgorithmicmedia", "algorithmicmedia"})
"""IPTC digital source type codes (lower case) of generated media."""
BURNED_IN_TAG = "BurnedInAnnotation"
"""The DICOM attribute ingest asks the decoder for."""

_TRAINING_MINING = re.compile(r"^(c2pa|cawg)\.training-mining(\.v\d+)?(__\d+)?$")
_ACTIONS = re.compile(r"^c2pa\.actions(\.v\d+)?(__\d+)?$")
_MIME_BY_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8", "image/jpeg"))
_MAX_DETAIL = 600


class ProvenanceConfig(BaseModel):
    """How ingest treats what a file declares; opt-outs and synthetic inputs are not
    configurable (they are the file's author's word), a burned-in annotation is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    burned_in_annotation: Literal["quarantine", "accept"] = "quarantine"
    """DICOM BurnedInAnnotation = YES: quarantine (default) or accept with a note, for a
    deployment that knows its burned-in text identifies no one (e.g. laterality marks)."""


class ProvenanceFinding(BaseModel):
    """One reason not to train on a file, and where in the file it was said."""

    model_config = ConfigDict(frozen=True)

    reason: str
    detail: str


class ProvenanceVerdict(BaseModel):
    """Everything a file declares that ingest acts on: reasons to quarantine, and notes for
    the record when it is accepted."""

    model_config = ConfigDict(frozen=True)

    findings: tuple[ProvenanceFinding, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def reason(self) -> str | None:
        """The strongest finding's reason (see `PRECEDENCE`), None when there is none."""
        return self._ordered()[0].reason if self.findings else None

    @property
    def error_class(self) -> str | None:
        return ERROR_CLASSES.get(self.reason or "")

    @property
    def detail(self) -> str:
        """The strongest reason's findings, then the others' ("also ..."), one line."""
        ordered = self._ordered()
        if not ordered:
            return ""
        first = [f.detail for f in ordered if f.reason == ordered[0].reason]
        rest = [f"{f.reason}: {f.detail}" for f in ordered if f.reason != ordered[0].reason]
        text = "; ".join(first) + (f"; also {'; '.join(rest)}" if rest else "")
        return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."

    def _ordered(self) -> list[ProvenanceFinding]:
        rank = {r: i for i, r in enumerate(PRECEDENCE)}
        return sorted(self.findings, key=lambda f: rank.get(f.reason, len(rank)))


def read_provenance(
    data: bytes,
    fmt: str,
    *,
    dicom_tags: Mapping[str, str] | None = None,
    config: ProvenanceConfig | None = None,
) -> ProvenanceVerdict:
    """What the raw bytes of one source (decoded as `fmt`: PNG, JPEG, DICOM, ...) declare.

    `dicom_tags` holds the file's DICOM attributes by keyword (at least `BURNED_IN_TAG`
    when present). Never raises.
    """
    config = config or ProvenanceConfig()
    findings: list[ProvenanceFinding] = []
    notes: list[str] = []
    try:
        mime = _mime(data, fmt)
        store = read_c2pa(data, mime) if mime is not None else None
        _judge_c2pa(store, findings, notes)
        xmp = read_xmp(data)
        _judge_xmp(xmp, findings, notes)
        if xmp.remote_manifests and store is None:
            findings.append(ProvenanceFinding(
                reason=PROVENANCE_UNREADABLE,
                detail=f"a remote C2PA manifest ({_shown(xmp.remote_manifests[0])}) is not "
                       "fetched at ingest and none is embedded"))
        _judge_dicom(dicom_tags or {}, config, findings, notes)
    except Exception as exc:  # a bug of ours must not let a file through unread
        findings.append(ProvenanceFinding(
            reason=PROVENANCE_UNREADABLE,
            detail=f"provenance read failed: {type(exc).__name__}: {short_error(exc)}"))
    return ProvenanceVerdict(findings=tuple(dict.fromkeys(findings)),
                             notes=tuple(dict.fromkeys(notes)))


def source_type_code(value: str) -> str:
    """The bare code of a digitalSourceType (the last segment of an IPTC URI, or as is)."""
    return re.split(r"[/#]", value.strip().rstrip("/#"))[-1]


def _mime(data: bytes, fmt: str) -> str | None:
    """The container by its magic bytes (a JPEG Pillow calls MPO is still a JPEG); DICOM
    has no C2PA binding."""
    if fmt.upper() == "DICOM":
        return None
    return next((mime for magic, mime in _MIME_BY_MAGIC if data.startswith(magic)), None)


def _judge_c2pa(store: C2paStore | None, findings: list[ProvenanceFinding],
                notes: list[str]) -> None:
    if store is None:
        return
    if store.error is not None:
        findings.append(ProvenanceFinding(reason=PROVENANCE_UNREADABLE,
                                          detail=f"C2PA store unreadable: {store.error}"))
        return
    failed = store.failures
    suffix = f" (manifest failed validation: {', '.join(failed)})" if failed else ""
    opted_out = False
    for manifest in store.manifests:
        for assertion in manifest.assertions:
            label = _shown(assertion.label)
            if _TRAINING_MINING.match(assertion.label):
                opted_out |= _training_mining(label, assertion.data, suffix, findings, notes)
            elif _ACTIONS.match(assertion.label):
                _actions(label, assertion.data, suffix, findings)
    notes.append(f"C2PA: {len(store.manifests)} manifest(s), {store.state or 'no state'}")
    if failed and not opted_out:
        notes.append(f"C2PA manifest failed validation: {', '.join(failed)}")


def _training_mining(label: str, data: Any, suffix: str, findings: list[ProvenanceFinding],
                     notes: list[str]) -> bool:
    """Judge one training-mining assertion; True when it opts out of training."""
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        findings.append(ProvenanceFinding(
            reason=PROVENANCE_UNREADABLE, detail=f"{label}: no readable entries{suffix}"))
        return False
    opted_out = False
    for key, entry in entries.items():
        use = entry.get("use") if isinstance(entry, dict) else None
        if not isinstance(use, str):
            findings.append(ProvenanceFinding(
                reason=PROVENANCE_UNREADABLE, detail=f"{label}: {_shown(key)} has no use{suffix}"))
            continue
        said = f"{label}: {_shown(key)} {_shown(use)}"
        normal = re.sub(r"[^a-z]", "", use.lower())
        training = str(key).rsplit(".", 1)[-1].lower() in TRAINING_KEYS
        if training and normal == "notallowed":
            findings.append(ProvenanceFinding(reason=TRAINING_OPT_OUT, detail=said + suffix))
            opted_out = True
        elif normal == "notallowed":
            notes.append(f"{said} (not training)")
        elif normal == "constrained":
            info = entry.get("constraint_info") if isinstance(entry, dict) else None
            notes.append(f"{said}{f' ({_shown(str(info))})' if info else ''}")
        else:
            notes.append(f"{said} (the ledger still decides)")
    return opted_out


def _actions(label: str, data: Any, suffix: str, findings: list[ProvenanceFinding]) -> None:
    if not isinstance(data, dict):
        return
    for field in ("actions", "templates"):
        for action in data.get(field) or []:
            if not isinstance(action, dict):
                continue
            source = action.get("digitalSourceType")
            if isinstance(source, str) and source_type_code(source).lower() in SYNTHETIC_SOURCE_TYPES:
                what = _shown(str(action.get("action", "action")))
                findings.append(ProvenanceFinding(
                    reason=SYNTHETIC_INPUT,
                    detail=f"{label}: {what} digitalSourceType "
                           f"{_shown(source_type_code(source))}{suffix}"))


def _judge_xmp(reading: XmpReading, findings: list[ProvenanceFinding],
               notes: list[str]) -> None:
    for error in reading.errors:
        findings.append(ProvenanceFinding(reason=PROVENANCE_UNREADABLE,
                                          detail=f"XMP unreadable: {_shown(error)}"))
    for value in reading.data_mining:
        code = _shown(source_type_code(value))
        if "PROHIBITED" in code.upper():
            findings.append(ProvenanceFinding(reason=TRAINING_OPT_OUT,
                                              detail=f"XMP plus:DataMining {code}"))
        else:
            notes.append(f"XMP plus:DataMining {code} (the ledger still decides)")
    for value in reading.digital_source_types:
        code = source_type_code(value)
        if code.lower() in SYNTHETIC_SOURCE_TYPES:
            findings.append(ProvenanceFinding(
                reason=SYNTHETIC_INPUT,
                detail=f"XMP Iptc4xmpExt:DigitalSourceType {_shown(code)}"))


def _judge_dicom(tags: Mapping[str, str], config: ProvenanceConfig,
                 findings: list[ProvenanceFinding], notes: list[str]) -> None:
    value = tags.get(BURNED_IN_TAG)
    if value is None or "".join(value.split()).upper() != "YES":
        return
    if config.burned_in_annotation == "accept":
        notes.append("DICOM BurnedInAnnotation YES accepted (burned_in_annotation = accept)")
    else:
        findings.append(ProvenanceFinding(
            reason=BURNED_IN_ANNOTATION,
            detail="DICOM BurnedInAnnotation (0028,0301) is YES: text in the pixels"))


def _shown(text: str, limit: int = 80) -> str:
    """File-given text as it goes into a note or detail: one line, bounded."""
    clean = "".join(c if c.isprintable() else "?" for c in str(text))
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."
