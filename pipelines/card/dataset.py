"""Who publishes the dataset and on what terms: the card section a DPO reads first.

The values come from the build file's ``[dataset]`` table (`pipelines.settings.
DatasetSettings`), copied onto the card so a withdrawal's redraw (from ``card.json``)
keeps them. What the build file leaves blank is printed as `NOT_STATED`, visibly (the
HTML marks it), never as an empty cell: a card with no data controller is a finding,
not a detail. How a subject withdraws has a default text, because the pipeline does
withdraw: what it does is known even when the contact is not.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

NOT_STATED = "not stated"
DEFAULT_WITHDRAWAL = (
    "A subject (or someone acting for them) asks the contact above to withdraw consent, "
    "which is recorded as a revoke in the consent ledger. The next reconcile withdraws "
    "every published image derived from the subject's records from every release (listed "
    "in WITHDRAWN) and erases their source images and the models trained on them; "
    "withdrawn images are never published again."
)
_TEXT = 2000


class DatasetInfo(BaseModel):
    """The dataset's title, who answers for it, and the terms it is published under."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("", max_length=200)
    controller: str = Field("", max_length=_TEXT)
    contact: str = Field("", max_length=_TEXT)
    licence: str = Field("", max_length=_TEXT)
    legal_basis: str = Field("", max_length=_TEXT)
    intended_uses: list[str] = []
    out_of_scope_uses: list[str] = []
    withdrawal: str = Field("", max_length=_TEXT)


def _stated(value: str) -> str:
    return value.strip() or NOT_STATED


def _listed(values: list[str]) -> str:
    return "; ".join(v.strip() for v in values if v.strip()) or NOT_STATED


def dataset_rows(info: DatasetInfo) -> list[tuple[str, str]]:
    """The section's (label, value) rows, blanks as `NOT_STATED`."""
    return [
        ("Dataset", _stated(info.name)),
        ("Data controller", _stated(info.controller)),
        ("Contact for data protection questions", _stated(info.contact)),
        ("Licence of the synthetic images", _stated(info.licence)),
        ("Legal basis of the processing", _stated(info.legal_basis)),
        ("Intended uses", _listed(info.intended_uses)),
        ("Out-of-scope uses", _listed(info.out_of_scope_uses)),
        ("How a subject withdraws", info.withdrawal.strip() or DEFAULT_WITHDRAWAL),
    ]
