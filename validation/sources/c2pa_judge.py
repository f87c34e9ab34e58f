"""What a source's C2PA store declares, judged for ingest, failing closed.

`validation.sources.c2pa_store` reads the store; this judges it (the rules are listed in
`validation.sources.provenance`): training-mining assertions, actions and IPTC metadata
assertions of every manifest; and what makes the store itself unreadable (bytes the SDK
did not read as a store, several stores, no manifest, parts the SDK could not parse).
It returns which declaration words (`validation.sources.declarations.markers` kinds)
its findings and notes account for, so that the backstop can tell a word inside the
store that was judged from one that was not.
"""

from __future__ import annotations

import re
from typing import Any

from validation.sources.c2pa_store import C2paStore, store_boxes
from validation.sources.declarations import (
    DATA_MINING,
    KINDS,
    is_synthetic,
    leftover,
    local_name,
    metadata_values,
    prohibits_mining,
    source_type_code,
)
from validation.sources.verdict import SYNTHETIC_INPUT, TRAINING_OPT_OUT, Judgement, shown

USES = frozenset({"allowed", "notallowed", "constrained"})
"""Training-mining uses (lower case, letters only); any other is unreadable."""
NOT_TRAINING = "ai_inference"
"""The one training-mining key whose notAllowed is not about training."""
TRAINING_MINING = re.compile(r"training-mining", re.IGNORECASE)
"""A label naming training-mining (``c2pa.`` / ``cawg.training-mining``, versioned,
numbered, or a spelling not yet known) is judged as one."""
ACTIONS = re.compile(r"^c2pa\.actions(\.v\d+)?(__\d+)?$")
METADATA = re.compile(
    r"^(stds\.iptc(\.photo-metadata)?|cawg\.metadata|c2pa\.metadata)(\.v\d+)?(__\d+)?$")
"""IPTC metadata assertions (JSON-LD), the labels the SDK and the CAWG use."""


def judge_c2pa(data: bytes, store: C2paStore | None, out: Judgement, *,
               jumbf: bool) -> set[str] | None:
    """Judge the store of `data` into `out`; the declaration words the judged store
    accounts for (all of them when it is reported unreadable: nothing in it is
    trusted), or None when the SDK read no store (what the bytes hold was not seen).
    `jumbf` is `has_jumbf(data)`, which the caller asked before asking the SDK."""
    if store is None:
        if jumbf:
            out.unreadable("C2PA-like bytes the SDK did not read as a store (a JUMBF box "
                           "outside where the SDK looks, or damaged)")
        return None
    boxes = store_boxes(data)
    if boxes > 1:
        out.unreadable(f"{boxes} C2PA manifest stores in one file; the SDK reads one")
    if store.error is not None:
        out.unreadable(f"C2PA store unreadable: {store.error}")
        return set(KINDS)
    failed = store.failures
    if not store.manifests:
        codes = f" ({shown(', '.join(failed), 200)})" if failed else ""
        out.unreadable(f"C2PA store with no manifest the SDK could read{codes}")
        return set(KINDS)
    if store.damaged:
        out.unreadable(f"C2PA store partly unreadable: {shown(', '.join(store.damaged), 200)}")
    suffix = f" (manifest failed validation: {', '.join(failed)})" if failed else ""
    before = len(out.findings)
    accounted: set[str] = set()
    for manifest in store.manifests:
        for assertion in manifest.assertions:
            label = shown(assertion.label)
            if TRAINING_MINING.search(assertion.label):
                accounted.add("training-mining")
                _training_mining(label, assertion.data, suffix, out)
            elif ACTIONS.match(assertion.label):
                accounted |= _actions(label, assertion.data, suffix, out)
            elif METADATA.match(assertion.label):
                accounted |= _metadata(label, assertion.data, suffix, out)
    out.note(f"C2PA: {len(store.manifests)} manifest(s), {store.state or 'no state'}")
    opted_out = any(f.reason == TRAINING_OPT_OUT for f in out.findings[before:])
    if failed and not opted_out:
        out.note(f"C2PA manifest failed validation: {', '.join(failed)}")
    return accounted


def _training_mining(label: str, data: Any, suffix: str, out: Judgement) -> None:
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        out.unreadable(f"{label}: no readable entries{suffix}")
        return
    for key, entry in entries.items():
        use = entry.get("use") if isinstance(entry, dict) else None
        if not isinstance(use, str):
            out.unreadable(f"{label}: {shown(key)} has no use{suffix}")
            continue
        said = f"{label}: {shown(key)} {shown(use)}"
        normal = re.sub(r"[^a-z]", "", use.lower())
        inference = str(key).rsplit(".", 1)[-1].lower() == NOT_TRAINING
        if normal not in USES:
            out.unreadable(f"{said}: not a use we know (allowed, notAllowed, constrained){suffix}")
        elif normal == "notallowed" and not inference:
            out.find(TRAINING_OPT_OUT, said + suffix)
        elif normal == "notallowed":
            out.note(f"{said} (not training)")
        elif normal == "constrained":
            info = entry.get("constraint_info") if isinstance(entry, dict) else None
            out.note(f"{said}{f' ({shown(str(info))})' if info else ''}")
        else:
            out.note(f"{said} (the ledger still decides)")


def _actions(label: str, data: Any, suffix: str, out: Judgement) -> set[str]:
    accounted: set[str] = set()
    if not isinstance(data, dict):
        return accounted
    for field in ("actions", "templates"):
        for action in data.get(field) or []:
            if not isinstance(action, dict):
                continue
            source = action.get("digitalSourceType")
            if not isinstance(source, str):
                continue
            what = shown(str(action.get("action", "action")))
            code = source_type_code(source)
            if is_synthetic(source):
                accounted.add(code.lower())
                out.find(SYNTHETIC_INPUT,
                         f"{label}: {what} digitalSourceType {shown(code)}{suffix}")
            elif stray := leftover(source):
                out.unreadable(f"{label}: {what} digitalSourceType {shown(code)} names "
                               f"{', '.join(stray)} in a form we do not read{suffix}")
    return accounted


def _metadata(label: str, data: Any, suffix: str, out: Judgement) -> set[str]:
    """IPTC metadata: Data Mining and digitalSourceType judged as in XMP."""
    accounted: set[str] = set()
    try:
        pairs = metadata_values(data)
    except ValueError as exc:
        out.unreadable(f"{label}: {exc}{suffix}")
        return accounted
    for key, value in pairs:
        said = f"{label}: {shown(key)} {shown(source_type_code(value))}"
        used: set[str] = set()
        if local_name(key) == DATA_MINING:
            if prohibits_mining(value):
                used = {"dmi-prohibited"}
                out.find(TRAINING_OPT_OUT, said + suffix)
            else:
                out.note(f"{said} (the ledger still decides)")
        elif is_synthetic(value):
            used = {source_type_code(value).lower()}
            out.find(SYNTHETIC_INPUT, said + suffix)
        if stray := leftover(value, used):
            out.unreadable(f"{said}: names {', '.join(stray)} in a form we do not read{suffix}")
        accounted |= used
    return accounted
