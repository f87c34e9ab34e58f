"""XMP packets found by structure (JPEG APP1 and extended XMP, PNG iTXt / tEXt / zTXt) and
by a raw scan elsewhere, parsed without entity expansion; every input a real file."""

from __future__ import annotations

import zlib

import pytest

from tests import files as f
from tests import provenance_files as pf
from validation.sources.xmp import (
    MAX_DEPTH,
    MAX_ELEMENTS,
    MAX_PACKET_BYTES,
    MAX_PACKETS,
    MAX_RAW_PACKETS,
    PLUS_NS,
    XMP_PNG_KEY,
    parse_packet,
    property_values,
    read_xmp,
    xmp_packets,
)
from validation.sources.xmp_places import MAX_EXTENDED, MAX_INFLATED_BYTES, MAX_TEXT_CHUNKS


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
    nothing = {"packets": 0, "data_mining": (), "digital_source_types": (),
               "remote_manifests": (), "errors": (), "spans": (), "unexplained": ()}
    for data in (pf.png(), pf.jpeg(), b"not an image at all"):
        assert read_xmp(data).model_dump() == nothing
    text = f.png_with_text(f.pattern())  # a tEXt and a zTXt: the zTXt is inflated and scanned
    got = read_xmp(text)
    assert got.model_dump() == nothing | {"spans": got.spans} and len(got.spans) == 1


# Hostile packets (issue 14 review, xmp2..xmp6): each finishes with an error, never minutes.


def test_nested_data_mining_past_the_depth_bound_is_an_error() -> None:
    """20,000 nested plus:DataMining (a 700 KB file) took 14 s with a walk per level."""
    data = pf.png_with_xmp(pf.nested_data_mining(20_000), compressed=True)
    got = read_xmp(data)
    assert got.errors == (f"PNG iTXt: nested deeper than {MAX_DEPTH} elements",)
    assert got.data_mining == ()
    assert read_xmp(pf.jpeg_with_extended_xmp(pf.nested_data_mining(20_000))).errors == (
        f"JPEG extended XMP: nested deeper than {MAX_DEPTH} elements",)
    shallow = parse_packet(pf.nested_data_mining(MAX_DEPTH - 5, pf.PROHIBITED))
    assert property_values(shallow, PLUS_NS, "DataMining") == [pf.PROHIBITED]


def test_a_packet_with_too_many_elements_is_an_error() -> None:
    wide = pf.bare_packet("<plus:Other/>" * MAX_ELEMENTS)
    assert len(wide) < MAX_PACKET_BYTES
    assert read_xmp(pf.png_with_xmp(wide, compressed=True)).errors == (
        f"PNG iTXt: more than {MAX_ELEMENTS} elements",)
    with pytest.raises(ValueError, match="more than"):
        property_values(parse_packet(wide), PLUS_NS, "DataMining")


def test_each_property_element_is_read_once_not_once_per_ancestor() -> None:
    """Nested DataMining over a Bag of 500 items: the items are the innermost's values,
    500 of them (a walk of every subtree gave each ancestor all 500 again: 30,000)."""
    items = "".join(f"<rdf:li>v{i}</rdf:li>" for i in range(500))
    packet = pf.nested_data_mining(55, f"<rdf:Bag>{items}</rdf:Bag>")
    assert property_values(parse_packet(packet), PLUS_NS, "DataMining") == [
        f"v{i}" for i in range(500)]


def test_more_than_the_packet_bound_is_an_error() -> None:
    """20,000 one-line APP1 packets (a linear search of the segments per hit: 10 s)."""
    small = pf.app1(b"http://ns.adobe.com/xap/1.0/\x00" + b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
    plain = pf.jpeg()
    for n in (MAX_PACKETS + 1, 20_000):
        got = read_xmp(plain[:2] + small * n + plain[2:])
        assert got.packets == MAX_PACKETS, n
        assert got.errors == (f"more than {MAX_PACKETS} XMP packets",), n
    at_bound = read_xmp(plain[:2] + small * MAX_PACKETS + plain[2:])
    assert (at_bound.packets, at_bound.errors) == (MAX_PACKETS, ())


def test_inflated_text_is_bounded_per_file() -> None:
    """100 compressed iTXt packets of 4 MB each (a 423 KB file) held 453 MB: now two are
    read, then the file's inflate budget is spent, said once."""
    packet = pf.xmp_packet(padding=4_000_000)
    chunk = f.png_chunk(b"iTXt", pf.text_chunk(XMP_PNG_KEY, packet, compressed=True))
    plain = pf.png()
    at = plain.rindex(b"IEND") - 4
    data = plain[:at] + chunk * 100 + plain[at:]
    assert len(data) < 500_000 and 2 * len(packet) <= MAX_INFLATED_BYTES < 3 * len(packet)
    got = read_xmp(data)
    assert got.packets == 2
    assert got.errors == (f"PNG iTXt XML:com.adobe.xmp: inflates past the {MAX_INFLATED_BYTES} "
                          "bytes one file may inflate",)


def test_more_compressed_text_chunks_than_the_bound_is_an_error() -> None:
    comment = f.png_chunk(b"zTXt", pf.text_chunk(b"Comment", b"hello", ctype=b"zTXt"))
    plain = pf.png()
    at = plain.rindex(b"IEND") - 4
    got = read_xmp(plain[:at] + comment * (MAX_TEXT_CHUNKS + 1) + plain[at:])
    assert got.errors == (f"PNG zTXt 'Comment': not inflated: more than {MAX_TEXT_CHUNKS} "
                          "compressed text chunks",)
    assert read_xmp(plain[:at] + comment * MAX_TEXT_CHUNKS + plain[at:]).errors == ()


# XMP where no reader looked before (issue 14 review, xmp1).


@pytest.mark.parametrize("ctype", [b"zTXt", b"tEXt", b"iTXt"])
def test_a_raw_profile_type_xmp_is_decoded(ctype: bytes) -> None:
    """exiftool's and ImageMagick's spelling: hex text under "Raw profile type xmp"."""
    packet = pf.xmp_packet(data_mining=pf.PROHIBITED)
    for name, payload in (("xmp", packet), ("APP1", b"http://ns.adobe.com/xap/1.0/\x00" + packet)):
        body = pf.text_chunk(f"Raw profile type {name}".encode(), pf.raw_profile(payload, name),
                             ctype=ctype, compressed=ctype == b"iTXt")
        got = read_xmp(pf.png_with_chunk(pf.png(), ctype, body))
        assert (got.data_mining, got.errors, got.unexplained) == ((pf.PROHIBITED,), (), ()), name


def test_a_raw_profile_that_is_cut_short_is_an_error() -> None:
    packet = pf.xmp_packet(data_mining=pf.PROHIBITED)
    text = pf.raw_profile(packet).replace(f"{len(packet):8d}".encode(),
                                          f"{len(packet) + 10:8d}".encode())
    body = pf.text_chunk(b"Raw profile type xmp", text, ctype=b"zTXt")
    (error,) = read_xmp(pf.png_with_chunk(pf.png(), b"zTXt", body)).errors
    assert error.startswith("PNG zTXt 'Raw profile type xmp': raw profile holds ")


def test_compressed_text_under_any_keyword_and_after_iend_is_read() -> None:
    packet = pf.xmp_packet(data_mining=pf.PROHIBITED)
    under_xmp = pf.png_with_chunk(pf.png(), b"iTXt",
                                  pf.text_chunk(b"XMP", packet, compressed=True))
    after_end = pf.png_after_end(pf.png(), f.png_chunk(
        b"iTXt", pf.text_chunk(XMP_PNG_KEY, packet, compressed=True)))
    for data in (under_xmp, after_end):
        got = read_xmp(data)
        assert (got.data_mining, got.errors, got.unexplained) == ((pf.PROHIBITED,), (), ())
    got = read_xmp(after_end)
    assert got.packets == 1 and got.spans == ((len(pf.png()), len(after_end)),)


def test_a_utf16_packet_with_a_byte_order_mark_is_decoded() -> None:
    packet = pf.xmp_packet(data_mining=pf.PROHIBITED).decode().encode("utf-16")
    data = pf.png_with_chunk(pf.png(), b"iTXt", pf.text_chunk(XMP_PNG_KEY, packet))
    got = read_xmp(data)
    assert (got.data_mining, got.errors) == ((pf.PROHIBITED,), ())


@pytest.mark.parametrize("hidden", [
    "<!-- DMI-PROHIBITED-AIMLTRAINING -->",  # a comment
    f'<xyz:DataMining xmlns:xyz="http://example.org/plus/">{pf.PROHIBITED}</xyz:DataMining>',
    f"<plus:DataMining><rdf:Bag><rdf:li><rdf:Description><rdf:value><rdf:Bag><rdf:li>"
    f"{pf.PROHIBITED}</rdf:li></rdf:Bag></rdf:value></rdf:Description></rdf:li></rdf:Bag>"
    "</plus:DataMining>",  # deeper than the values are read
])
def test_declaration_words_a_packet_holds_beyond_its_values_are_unexplained(hidden: str) -> None:
    got = read_xmp(pf.jpeg_with_xmp(pf.bare_packet(hidden)))
    assert got.errors == () and pf.PROHIBITED not in got.data_mining
    assert got.unexplained == ("JPEG APP1: dmi-prohibited outside plus:DataMining and "
                               "Iptc4xmpExt:DigitalSourceType",)


def test_declaration_words_in_inflated_text_outside_a_packet_are_unexplained() -> None:
    body = pf.text_chunk(b"Comment", b"usage: DMI-PROHIBITED-AIMLTRAINING", ctype=b"zTXt")
    got = read_xmp(pf.png_with_chunk(pf.png(), b"zTXt", body))
    assert got.unexplained == ("PNG zTXt 'Comment' (inflated): dmi-prohibited outside any "
                               "XMP packet",)


def test_what_the_reader_read_is_named_by_its_spans() -> None:
    packet = pf.xmp_packet(data_mining=pf.ALLOWED)
    data = pf.jpeg_with_xmp(packet)
    (span,) = read_xmp(data).spans
    assert data[span[0] : span[0] + 2] == b"\xff\xe1" and packet in data[span[0] : span[1]]
    after = pf.png() + packet
    start, end = after.index(b"<x:xmpmeta"), after.index(b"</x:xmpmeta>") + len(b"</x:xmpmeta>")
    assert read_xmp(after).spans == ((start, end),)


def test_more_extended_packets_than_the_bound_is_an_error() -> None:
    segments: list[bytes] = []
    for i in range(MAX_EXTENDED + 1):
        segments += pf.extended_xmp_segments(pf.xmp_packet(padding=i))[1]
    plain = pf.jpeg()
    got = read_xmp(plain[:2] + b"".join(segments) + plain[2:])
    assert got.errors == (f"more than {MAX_EXTENDED} extended XMP packets",)
    one = read_xmp(plain[:2] + b"".join(segments[:MAX_EXTENDED]) + plain[2:])
    assert (one.packets, one.errors) == (MAX_EXTENDED, ())
