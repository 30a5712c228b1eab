"""The photographer's own words from XMP and IPTC: keywords, title, description (pure).

XMP is parsed here with ``defusedxml`` rather than through Pillow's ``getxmp()``: its dict
flattens namespaces and turns one keyword into a str and a language alternative into a dict,
while reading the RDF by name keeps ``dc:subject`` apart from any other ``subject``. DTDs are
refused outright, so entity expansion ("billion laughs") never starts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from defusedxml import DefusedXmlException, ElementTree

from orchestrator.metadata_exif import decode_text

#: XMP packets larger than this are not parsed; real ones are a few kilobytes.
MAX_XMP_BYTES = 1_000_000

_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
#: Creation dates, most telling first: when the shutter fired, when the scene was (a scan's
#: ``photoshop:DateCreated``), when the file was made.
XMP_DATES = (
    ("exif:DateTimeOriginal", "{http://ns.adobe.com/exif/1.0/}DateTimeOriginal"),
    ("photoshop:DateCreated", "{http://ns.adobe.com/photoshop/1.0/}DateCreated"),
    ("xmp:CreateDate", "{http://ns.adobe.com/xap/1.0/}CreateDate"),
)

# IPTC IIM datasets (record 2, the application record).
IPTC_TITLE = (2, 5)
IPTC_KEYWORDS = (2, 25)
IPTC_CAPTION = (2, 120)


@dataclass(frozen=True)
class Words:
    """Text as written, not yet cleaned or bounded (``metadata.py`` does that)."""

    keywords: tuple[str, ...] = ()
    title: str | None = None
    description: str | None = None
    #: ``(name, value)`` of each creation date present, in :data:`XMP_DATES` order.
    dates: tuple[tuple[str, str], ...] = ()


def read_xmp(packet: bytes | str) -> Words:
    """The keywords (``dc:subject``), title, description and creation dates of an XMP packet.

    Raises:
        ValueError: a packet over :data:`MAX_XMP_BYTES`, one with a DTD or entities, or one
            that is not XML (``SyntaxError`` from the parser is turned into ``ValueError``).
    """
    raw = packet.encode("utf-8") if isinstance(packet, str) else packet
    if len(raw) > MAX_XMP_BYTES:
        raise ValueError(f"packet of {len(raw)} bytes, over the {MAX_XMP_BYTES} byte limit")
    try:
        root = ElementTree.fromstring(raw.strip(b"\x00 \t\r\n"), forbid_dtd=True)
    except DefusedXmlException:
        raise ValueError("refused: a DTD or entities (an XML bomb?)") from None
    except SyntaxError as e:  # xml.etree's ParseError
        raise ValueError(f"not XML ({e})") from None
    descriptions = list(root.iter(_RDF + "Description"))
    subject = next(_properties(descriptions, _DC + "subject"), None)
    title = next(_properties(descriptions, _DC + "title"), None)
    description = next(_properties(descriptions, _DC + "description"), None)
    dates = []
    for name, tag in XMP_DATES:
        value = next(_properties(descriptions, tag), None)
        found = value if isinstance(value, str) else _single(value)
        if found:
            dates.append((name, found))
    return Words(
        keywords=_bag(subject),
        title=_alternative(title),
        description=_alternative(description),
        dates=tuple(dates),
    )


def _properties(descriptions: Sequence[Any], tag: str) -> Iterator[Any]:
    """Each value of property ``tag``: an attribute's str, or an element."""
    for description in descriptions:
        if tag in description.attrib:
            yield description.attrib[tag]
        yield from description.findall(tag)


def _items(element: Any) -> list[Any]:
    return list(element.iter(_RDF + "li"))


def _single(element: Any) -> str | None:
    if element is None:
        return None
    text = element.text
    return text if isinstance(text, str) and text.strip() else None


def _bag(value: Any) -> tuple[str, ...]:
    """An ``rdf:Bag``'s items (or a bare value, as some writers leave a single keyword)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    items = _items(value)
    if not items:
        one = _single(value)
        return (one,) if one else ()
    return tuple(t for t in (_single(li) for li in items) if t)


def _alternative(value: Any) -> str | None:
    """A language alternative's default text (``x-default``), else its first one."""
    if value is None or isinstance(value, str):
        return value or None
    items = _items(value)
    for li in items:
        if li.get(_XML_LANG) == "x-default" and _single(li):
            return _single(li)
    for li in items:
        if _single(li):
            return _single(li)
    return _single(value)


def read_iptc(records: Mapping[tuple[int, int], Any]) -> Words:
    """Keywords (2:25), title (2:05) and caption (2:120) of IPTC records as Pillow gives them.

    Pillow gives bytes for a dataset seen once and a list for one repeated, so one keyword
    is not a list; text is UTF-8 (the usual ``ESC % G`` declaration) or else Latin-1.
    """
    return Words(
        keywords=tuple(_iptc_texts(records.get(IPTC_KEYWORDS))),
        title=next(iter(_iptc_texts(records.get(IPTC_TITLE))), None),
        description=next(iter(_iptc_texts(records.get(IPTC_CAPTION))), None),
    )


def _iptc_texts(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [decode_text(v) for v in values if isinstance(v, bytes) and v.strip()]
