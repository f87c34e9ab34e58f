"""The ledger's edges (issue 13, section 8): times at and past the accepted range, subject
ids that are invisible, spoofed or differently normalised, and a damaged file."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from consent import Ledger, import_events
from consent.events import EARLIEST, LATEST
from consentgen.errors import ImportRejectedError, InvalidEventError, LedgerError, LedgerIntegrityError
from tests.consent.conftest import PURPOSE


def test_the_first_and_last_accepted_instants_verify(ledger: Ledger) -> None:
    ledger.grant("early", PURPOSE, effective_at=EARLIEST, expires_at=LATEST)
    ledger.grant("late", PURPOSE, effective_at=LATEST)
    ledger.revoke("mid", PURPOSE, effective_at="1999-12-31T23:59:59.999999-05:00")
    stored = {e.subject_id: e for e in ledger.events()}
    assert stored["early"].effective_at == EARLIEST and stored["early"].expires_at == LATEST
    assert stored["late"].effective_at == LATEST
    assert ledger.verify().seq == 3


@pytest.mark.parametrize("when", ["0999-06-01T00:00:00Z", "1899-12-31T23:59:59Z",
                                  "3000-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00"])
def test_a_time_outside_the_range_is_refused_and_the_ledger_stays_whole(
        ledger: Ledger, when: str) -> None:
    with pytest.raises(InvalidEventError, match=r"effective_at .*outside the ledger's range"):
        ledger.grant("x", PURPOSE, effective_at=when)
    with pytest.raises(InvalidEventError, match=r"at .*outside the ledger's range"):
        ledger.eligible(PURPOSE, datetime.fromisoformat(when.replace("Z", "+00:00")))
    assert ledger.verify().seq == 0


def test_an_import_line_outside_the_range_is_named(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    path.write_text("subject_id,purpose,action,effective_at\n"
                    f"a,{PURPOSE},grant,2026-01-01T00:00:00Z\n"
                    f"b,{PURPOSE},grant,0999-06-01T00:00:00Z\n")
    with pytest.raises(ImportRejectedError, match=r"line 3: effective_at: .*0999-06-01.*outside"):
        import_events(ledger, path)
    assert ledger.head().seq == 0


# --- subject ids -------------------------------------------------------------------------

NFC = unicodedata.normalize("NFC", "jos\u00e9")
NFD = unicodedata.normalize("NFD", "jos\u00e9")


def test_nfd_and_nfc_spellings_are_one_subject(ledger: Ledger, tmp_path: Path) -> None:
    assert NFC != NFD
    ledger.grant(NFD, PURPOSE, effective_at="2026-01-01T00:00:00Z", event_id="g1")
    assert ledger.state(NFC, PURPOSE).granted and ledger.state(NFD, PURPOSE).granted
    assert ledger.eligible(PURPOSE) == [NFC]
    assert [e.event_id for e in ledger.events(subject_id=NFC)] == ["g1"]
    path = tmp_path / "revoke.jsonl"
    path.write_text(f'{{"subject_id": "{NFC}", "purpose": "{PURPOSE}", "action": "revoke", '
                    '"effective_at": "2026-02-01T00:00:00Z"}\n', encoding="utf-8")
    import_events(ledger, path)
    assert not ledger.state(NFD, PURPOSE).granted
    assert {e.subject_id for e in ledger.events()} == {NFC}
    assert ledger.eligible(PURPOSE) == []


REFUSED = {
    "U+200B zero width space": "\u200b",
    "U+FEFF byte order mark": "\ufeff",
    "U+200E left-to-right mark": "\u200e",
    "U+200F right-to-left mark": "\u200f",
    **{f"U+{cp:04X} bidi embedding/override": chr(cp) for cp in range(0x202A, 0x202F)},
    **{f"U+{cp:04X} bidi isolate": chr(cp) for cp in range(0x2066, 0x206A)},
    "U+0007 bell (Cc)": "\u0007",
    "U+00AD soft hyphen (Cf)": "\u00ad",
}


@pytest.mark.parametrize("char", REFUSED.values(), ids=REFUSED.keys())
@pytest.mark.parametrize("where", ["alone", "prefix", "inside"])
def test_invisible_control_and_bidi_characters_are_refused(
        ledger: Ledger, char: str, where: str) -> None:
    subject = {"alone": char, "prefix": char + "patient-1", "inside": "pat" + char + "ient-1"}[where]
    with pytest.raises(InvalidEventError, match=rf"subject_id: .*U\+{ord(char):04X}"):
        ledger.grant(subject, PURPOSE)
    with pytest.raises(InvalidEventError, match=rf"subject_id: .*U\+{ord(char):04X}"):
        ledger.revoke(subject, PURPOSE)
    assert ledger.head().seq == 0


@pytest.mark.parametrize("subject", ["", " ", "\u3000", " \u00a0 "])
def test_ids_empty_after_stripping_are_refused(ledger: Ledger, subject: str) -> None:
    with pytest.raises(InvalidEventError, match=r"subject_id: .*empty"):
        ledger.grant(subject, PURPOSE)


def test_an_import_with_a_spoofed_id_is_refused_whole(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "spoof.csv"
    path.write_text("subject_id,purpose,action,effective_at\n"
                    f"alice,{PURPOSE},grant,2026-01-01T00:00:00Z\n"
                    f"\u202ealice,{PURPOSE},grant,2026-01-01T00:00:00Z\n", encoding="utf-8")
    with pytest.raises(ImportRejectedError, match=r"line 3: subject_id: .*bidirectional.*U\+202E"):
        import_events(ledger, path)
    assert ledger.head().seq == 0


# --- a damaged file ----------------------------------------------------------------------


def damage(ledger: Ledger, sql: str) -> None:
    con = duckdb.connect(str(ledger.path))
    con.execute(sql)
    con.close()


def test_verify_with_the_heads_table_dropped_names_it_and_a_sequence(filled: Ledger) -> None:
    damage(filled, "DROP TABLE heads")
    with pytest.raises(LedgerIntegrityError) as err:
        filled.verify()
    assert err.value.seq == 1
    assert "the heads table is missing" in str(err.value) and "events 1..10" in str(err.value)
    with pytest.raises(LedgerError, match=r"damaged \(the heads table is missing\); nothing appended"):
        Ledger(filled.path).grant("late", PURPOSE)  # a fresh process's view
    assert len(filled.events()) == 10


def test_verify_with_a_column_dropped_names_it(filled: Ledger) -> None:
    damage(filled, "ALTER TABLE events DROP COLUMN source")
    with pytest.raises(LedgerIntegrityError, match=r"sequence 1: the events table lacks column\(s\) source"):
        filled.verify()


def test_verify_with_the_events_table_dropped_is_one_clear_error(filled: Ledger) -> None:
    damage(filled, "DROP TABLE events")
    with pytest.raises(LedgerError, match="no events table"):
        filled.verify()


def test_named_anchors_are_reported_by_name(filled: Ledger) -> None:
    head = filled.verify()
    assert filled.verify(anchors={"release v0001": head}) == head
    bad = head._replace(hash="0" * 64)
    with pytest.raises(LedgerIntegrityError,
                       match=r"sequence 10: the head release v0002 recorded \(sequence 10\) no longer"):
        filled.verify(anchors={"release v0001": head, "release v0002": bad})
    with pytest.raises(LedgerIntegrityError, match=r"sequence 11: .*release v0003 recorded "
                                                   r"\(sequence 12\) reaches 12: tail truncated"):
        filled.verify(anchors={"release v0003": head._replace(seq=12)})
