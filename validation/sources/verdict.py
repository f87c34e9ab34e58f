"""The provenance verdict's vocabulary: reasons, findings, notes, and the collector the
judges of each kind of declaration (C2PA, XMP, DICOM, the backstop) write into.

Its own module so that those judges (`validation.sources.c2pa_judge`,
`validation.sources.provenance`) share one model without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

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
_MAX_DETAIL = 600


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


@dataclass
class Judgement:
    """What the judges of one file have found so far (findings and notes, in order)."""

    findings: list[ProvenanceFinding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def find(self, reason: str, detail: str) -> None:
        self.findings.append(ProvenanceFinding(reason=reason, detail=detail))

    def unreadable(self, detail: str) -> None:
        self.find(PROVENANCE_UNREADABLE, detail)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def verdict(self) -> ProvenanceVerdict:
        return ProvenanceVerdict(findings=tuple(dict.fromkeys(self.findings)),
                                 notes=tuple(dict.fromkeys(self.notes)))


def shown(text: str, limit: int = 80) -> str:
    """File-given text as it goes into a note or detail: one line, bounded (for display
    only: judging always reads the value as written)."""
    clean = "".join(c if c.isprintable() else "?" for c in str(text))
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."
