"""What a source file declares about itself, read from its raw bytes before decoding strips it.

Consent is not only in the ledger (DESIGN.md invariant 1): an image can say "do not train
on me", and an AI-generated image can say what it is. Ingest re-encodes every source, so
these declarations are read here, from the bytes as they arrived, or never:

- C2PA (JPEG, PNG; `validation.sources.c2pa_store`): a training-mining assertion
  (``c2pa.training-mining``, its successor ``cawg.training-mining``, any label naming
  training-mining) in ANY manifest of the store (an ingredient's too, not only the active
  one) with use ``notAllowed`` under any key but ``*.ai_inference`` -> `TRAINING_OPT_OUT`.
  It counts even when the manifest fails validation (fail closed; the failure is named
  in the detail). ``ai_inference`` is not training (a note); ``constrained`` and
  ``allowed`` are notes: an allowed never overrides the ledger, which alone grants. A use
  that is none of the three is unreadable.
- IPTC metadata in a C2PA manifest (``stds.iptc``, ``stds.iptc.photo-metadata``,
  ``cawg.metadata``, ``c2pa.metadata``, with ``.vN`` / ``__N``): its Data Mining and
  digitalSourceType keys (any prefix, or full URIs) are judged as in XMP.
- XMP (`validation.sources.xmp`): ``plus:DataMining`` whose value holds ``PROHIBITED``
  (e.g. ``DMI-PROHIBITED-AIMLTRAINING``) -> `TRAINING_OPT_OUT`.
- A digitalSourceType (every action and template of every ``c2pa.actions`` /
  ``c2pa.actions.v2`` assertion, IPTC metadata, XMP ``Iptc4xmpExt:DigitalSourceType``) of
  trainedAlgorithmicMedia, compositeWithTrainedAlgorithmicMedia or algorithmicMedia, by
  full IPTC URI or bare code -> `SYNTHETIC_INPUT`: training on another generator's output
  launders whatever it was trained on and degrades the model.
- DICOM BurnedInAnnotation (0028,0301) = YES -> `BURNED_IN_ANNOTATION`: text in the pixels
  (names, ids, dates) that no metadata stripping removes. `ProvenanceConfig` may accept it
  instead, with a note on the record.
- A provenance block that cannot be read, or bytes that say more than what was read ->
  `PROVENANCE_UNREADABLE`: we cannot see whether it says no, so we do not train on it.
  That is: a C2PA store the SDK cannot parse, reads with no manifest or with parts it
  could not read (``*.cbor.invalid``, ``*.missing``, ``*.malformed``), several stores,
  C2PA store bytes the SDK did not read as a store (a ``caBX`` after IEND or under
  another name, APP11 after EOI); an XMP packet defusedxml refuses (a DTD, an entity
  declaration, broken XML, an incomplete extended XMP, an oversize, too deep or too
  large packet, too many); a training-mining assertion of unknown shape; a remote
  manifest (``dcterms:provenance`` in XMP, none embedded: ingest never fetches); and the
  backstop: a declaration word (``training-mining``, ``DMI-PROHIBITED``, a synthetic
  source-type code; `validation.sources.declarations.markers`) in the file's bytes or
  its inflated text that nothing judged accounts for.

When several apply, the verdict's reason is the first in `PRECEDENCE` (opt-out, synthetic,
burned-in, unreadable: what the rights holder said outranks what we infer); the detail
names it first and the others after. `read_provenance` never raises: a failure of its
own is `PROVENANCE_UNREADABLE` too. A plain file costs two byte searches for a store, the
XMP reader's few searches and the backstop's (one ``lower()``, six substring searches),
and no SDK call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from validation.sources.c2pa_judge import judge_c2pa
from validation.sources.c2pa_store import has_jumbf, read_c2pa, store_spans
from validation.sources.declarations import (
    MAX_MARKERS,
    SYNTHETIC_SOURCE_TYPES,
    Marker,
    Spans,
    is_synthetic,
    leftover,
    markers,
    prohibits_mining,
    source_type_code,
)
from validation.sources.pixels import short_error
from validation.sources.verdict import (
    BURNED_IN_ANNOTATION,
    ERROR_CLASSES,
    PRECEDENCE,
    PROVENANCE_UNREADABLE,
    SYNTHETIC_INPUT,
    TRAINING_OPT_OUT,
    Judgement,
    ProvenanceFinding,
    ProvenanceVerdict,
    shown,
)
from validation.sources.xmp import XmpReading, read_xmp

__all__ = ["BURNED_IN_ANNOTATION", "BURNED_IN_TAG", "ERROR_CLASSES", "PRECEDENCE",
           "PROVENANCE_UNREADABLE", "SYNTHETIC_INPUT", "SYNTHETIC_SOURCE_TYPES",
           "TRAINING_KEYS", "TRAINING_OPT_OUT", "ProvenanceConfig", "ProvenanceFinding",
           "ProvenanceVerdict", "read_provenance", "source_type_code"]

TRAINING_KEYS = frozenset({"ai_training", "ai_generative_training", "data_mining"})
"""The training-mining entries the standards name for training; a notAllowed under any
other key but ``ai_inference`` (a misspelt or future one) counts as an opt-out too."""
BURNED_IN_TAG = "BurnedInAnnotation"
"""The DICOM attribute ingest asks the decoder for."""
MAX_STRAYS = 3
"""Backstop findings per file: one per kind of word, the first few."""

_MIME_BY_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8", "image/jpeg"))


class ProvenanceConfig(BaseModel):
    """How ingest treats what a file declares; opt-outs and synthetic inputs are not
    configurable (they are the file's author's word), a burned-in annotation is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    burned_in_annotation: Literal["quarantine", "accept"] = "quarantine"
    """DICOM BurnedInAnnotation = YES: quarantine (default) or accept with a note, for a
    deployment that knows its burned-in text identifies no one (e.g. laterality marks)."""


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
    out = Judgement()
    try:
        mime = _mime(data, fmt)
        jumbf = mime is not None and has_jumbf(data)
        store = read_c2pa(data, mime) if mime is not None and jumbf else None
        accounted = judge_c2pa(data, store, out, jumbf=jumbf) if mime is not None else None
        xmp = read_xmp(data)
        _judge_xmp(xmp, out)
        if xmp.remote_manifests and store is None:
            out.unreadable(f"a remote C2PA manifest ({shown(xmp.remote_manifests[0])}) is not "
                           "fetched at ingest and none is embedded")
        _judge_dicom(dicom_tags or {}, config, out)
        _backstop(data, xmp, store_spans(data) if accounted is not None else [],
                  accounted or set(), out)
    except Exception as exc:  # a bug of ours must not let a file through unread
        out.unreadable(f"provenance read failed: {type(exc).__name__}: {short_error(exc)}")
    return out.verdict()


def _mime(data: bytes, fmt: str) -> str | None:
    """The container by its magic bytes (a JPEG Pillow calls MPO is still a JPEG); DICOM
    has no C2PA binding."""
    if fmt.upper() == "DICOM":
        return None
    return next((mime for magic, mime in _MIME_BY_MAGIC if data.startswith(magic)), None)


def _judge_xmp(reading: XmpReading, out: Judgement) -> None:
    for error in reading.errors:
        out.unreadable(f"XMP unreadable: {shown(error)}")
    for text in reading.unexplained:
        out.unreadable(f"declaration word not read as a value: {shown(text, 160)}")
    for value in reading.data_mining:
        code = shown(source_type_code(value))
        used: tuple[str, ...] = ()
        if prohibits_mining(value):
            used = ("dmi-prohibited",)
            out.find(TRAINING_OPT_OUT, f"XMP plus:DataMining {code}")
        else:
            out.note(f"XMP plus:DataMining {code} (the ledger still decides)")
        if stray := leftover(value, used):
            out.unreadable(f"XMP plus:DataMining {code} names {', '.join(stray)} in a form "
                           "we do not read")
    for value in reading.digital_source_types:
        code = source_type_code(value)
        if is_synthetic(value):
            out.find(SYNTHETIC_INPUT, f"XMP Iptc4xmpExt:DigitalSourceType {shown(code)}")
        elif stray := leftover(value):
            out.unreadable(f"XMP Iptc4xmpExt:DigitalSourceType {shown(code)} names "
                           f"{', '.join(stray)} in a form we do not read")


def _judge_dicom(tags: Mapping[str, str], config: ProvenanceConfig, out: Judgement) -> None:
    value = tags.get(BURNED_IN_TAG)
    if value is None or "".join(value.split()).upper() != "YES":
        return
    if config.burned_in_annotation == "accept":
        out.note("DICOM BurnedInAnnotation YES accepted (burned_in_annotation = accept)")
    else:
        out.find(BURNED_IN_ANNOTATION,
                 "DICOM BurnedInAnnotation (0028,0301) is YES: text in the pixels")


def _backstop(data: bytes, xmp: XmpReading, store: list[tuple[int, int]],
              accounted: set[str], out: Judgement) -> None:
    """Declaration words in the file's bytes that nothing judged accounts for. Inside an
    XMP span the XMP reading answers for them (values, `unexplained`, errors); inside the
    judged C2PA store, the store's findings and notes must account for each kind; anywhere
    else they were outside anything read."""
    found = markers(data)
    if not found:
        return
    if len(found) > MAX_MARKERS:
        out.unreadable(f"more than {MAX_MARKERS} declaration words in the file")
        return
    read, in_store = Spans(xmp.spans), Spans(store)
    store_kinds: set[str] = set()
    strays: dict[str, Marker] = {}
    for marker in found:
        if read.holds(marker.pos):
            continue
        if in_store.holds(marker.pos):
            store_kinds.add(marker.kind)
        else:
            strays.setdefault(marker.kind, marker)
    for kind in sorted(store_kinds - accounted):
        out.unreadable(f"C2PA store bytes hold {kind!r}, which no assertion we judged "
                       "accounts for")
    for marker in list(strays.values())[:MAX_STRAYS]:
        out.unreadable(f"{marker.shown()}, outside anything read (a declaration we "
                       "cannot see)")
