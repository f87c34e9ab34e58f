"""XMP packets found by structure (JPEG APP1 and extended XMP, PNG iTXt / tEXt / zTXt) and
by a raw scan elsewhere, parsed without entity expansion; every input a real file."""

from __future__ import annotations

import zlib

import pytest

from tests import files as f
from tests import provenance_files as pf
from validation.sources.xmp import (
    MAX_RAW_PACKETS,
    PLUS_NS,
    XMP_PNG_KEY,
    parse_packet,
    property_values,
    read_xmp,
    xmp_packets,
)


def test_pillow_written_jpeg_and_png_packets_are_found_once() -> None:
    packet = pf.xmp_packet(data_mining=pf.PROHIBITED, source_type="digitalCapture")
    for data in (pf.jpeg_with_xmp(packet), pf.png_with_xmp(packet, compressed=False),
                 pf.png_with_xmp(packet, compressed=True)):
        got = read_xmp(data)
        assert (got.packets, got.errors) == (1, ())  # the raw scan does not count it again
        assert got.data_mining == (pf.PROHIBITED,)
        assert got.digital_source_types == ("digitalCapture",)


@pytest.mark.parametrize("ctype", [b"tEXt", b"zTXt"])
def test_png_text_chunks_under_the_xmp_key_count_too(ctype: bytes) -> None:
    packet = pf.xmp_packet(data_mining=pf.PROHIBITED)
    body = XMP_PNG_KEY + b"\x00" + (packet if ctype == b"tEXt" else b"\x00" + zlib.compress(packet))
    got = read_xmp(pf.png_with_chunk(pf.png(), ctype, body))
    assert got.data_mining == (pf.PROHIBITED,)
    assert got.packets == 1


def test_extended_xmp_is_reassembled_in_offset_order() -> None:
    extended = pf.xmp_packet(data_mining=pf.PROHIBITED, padding=200_000)
    guid, segments = pf.extended_xmp_segments(extended)
    assert len(segments) == 4
    plain = pf.jpeg()
    shuffled = plain[:2] + b"".join(reversed(segments)) + plain[2:]
    got = read_xmp(shuffled)
    assert got.errors == () and got.data_mining == (pf.PROHIBITED,)
    assert ("JPEG extended XMP", extended) in xmp_packets(shuffled)[0]
    assert guid.isalnum() and len(guid) == 32


def test_a_missing_extended_chunk_is_an_error() -> None:
    data = pf.jpeg_with_extended_xmp(pf.xmp_packet(padding=200_000), drop=2)
    (error,) = [e for e in read_xmp(data).errors if "extended" in e]
    assert "of 200" in error and "bytes present" in error


def test_a_packet_outside_the_segments_is_found_by_the_raw_scan() -> None:
    packet = pf.xmp_packet(source_type="trainedAlgorithmicMedia")
    inside_exif = f.encode(f.pattern(), "JPEG", exif=b"Exif\x00\x00" + packet)
    after_end = pf.png() + packet
    for data in (inside_exif, after_end):
        got = read_xmp(data)
        assert got.digital_source_types == ("trainedAlgorithmicMedia",)
        assert [w for w, _ in xmp_packets(data)[0]] == ["raw bytes"]


def test_an_unterminated_raw_packet_and_too_many_are_errors() -> None:
    assert read_xmp(pf.png() + b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>").errors == (
        f"raw bytes: <x:xmpmeta at byte {len(pf.png())} has no end",)
    many = pf.png() + pf.xmp_packet() * (MAX_RAW_PACKETS + 1)
    got = read_xmp(many)
    assert got.packets == MAX_RAW_PACKETS
    assert got.errors == (f"raw bytes: more than {MAX_RAW_PACKETS} XMP packets",)


def test_refused_packets_are_named_never_expanded() -> None:
    with pytest.raises(ValueError, match="DTDForbidden"):
        parse_packet(pf.billion_laughs())
    external = (b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                b'<x:xmpmeta xmlns:x="adobe:ns:meta/">&e;</x:xmpmeta>')
    with pytest.raises(ValueError, match="refused"):
        parse_packet(external)
    with pytest.raises(ValueError, match="not well-formed"):
        parse_packet(b"<x:xmpmeta><unclosed></x:xmpmeta>")
    with pytest.raises(ValueError, match="over"):
        parse_packet(b" " * (5 << 20))
    got = read_xmp(pf.jpeg_with_xmp(external))
    assert got.errors == ("JPEG APP1: refused (DTDForbidden)",) and "passwd" not in got.errors[0]


def test_property_values_in_every_rdf_spelling() -> None:
    forms = {
        "attribute": pf.xmp_packet(data_mining=pf.PROHIBITED, form="attribute"),
        "resource": pf.xmp_packet(data_mining=pf.PROHIBITED, form="resource"),
        "text": pf.xmp_packet(data_mining=pf.PROHIBITED, form="text"),
        "bag": pf.xmp_packet(extra=f"<plus:DataMining><rdf:Bag><rdf:li>{pf.PROHIBITED}</rdf:li>"
                                   "</rdf:Bag></plus:DataMining>"),
        "qualified": pf.xmp_packet(extra=f'<plus:DataMining rdf:parseType="Resource">'
                                         f"<rdf:value>{pf.PROHIBITED}</rdf:value>"
                                         "</plus:DataMining>"),
    }
    for form, packet in forms.items():
        assert property_values(parse_packet(packet), PLUS_NS, "DataMining") == [pf.PROHIBITED], form


def test_a_plain_file_has_no_packets() -> None:
    for data in (pf.png(), pf.jpeg(), f.png_with_text(f.pattern()), b"not an image at all"):
        assert read_xmp(data).model_dump() == {"packets": 0, "data_mining": (),
                                               "digital_source_types": (),
                                               "remote_manifests": (), "errors": ()}
