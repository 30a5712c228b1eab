"""Groups of duplicate photos, and which copy to keep (pure).

Two kinds. **Exact copies**: one content (one document, its id the SHA-256 of the bytes) at
several locations. **Near duplicates**: different files of the same picture (resized,
re-encoded, lightly cropped or edited, converted), found as pairs of documents whose embeddings
are close (kNN through the index) *and* whose perceptual hashes nearly agree: the embedding
alone also brings two shots of one subject together, the hash alone misses crops.

Every location of every document in a group is a member; one member is suggested as the keeper:
the most pixels, then an original format over a re-encode, then the earliest date, then the
shortest path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.phash import hamming
from orchestrator.search.base import ImageDocument

#: Formats a camera or an editor writes first; a JPEG or WebP beside one is its re-encode.
ORIGINAL_FORMATS = frozenset({"RAW", "DNG", "HEIF", "HEIC", "AVIF", "PNG", "TIFF"})


class Kind(StrEnum):
    exact = "exact"
    near = "near"


@dataclass(frozen=True)
class Member:
    location: str
    doc_id: str
    width: int
    height: int
    bytes: int | None
    format: str | None
    taken_at: str | None  # ISO 8601 when the photo says it
    mtime: float | None

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class Group:
    kind: Kind
    keeper: Member
    why: str
    members: tuple[Member, ...]  # the keeper first


def members_of(document: ImageDocument) -> list[Member]:
    """One member per location of ``document``."""
    photo = document.photo
    return [
        Member(
            location=place.uri,
            doc_id=document.id,
            width=document.width,
            height=document.height,
            bytes=place.size,
            format=photo.format if photo is not None else None,
            taken_at=photo.taken_at if photo is not None else None,
            mtime=place.mtime,
        )
        for place in document.places
    ]


def _original(member: Member) -> bool:
    return (member.format or "").upper() in ORIGINAL_FORMATS


def _date(member: Member) -> str:
    # A missing date sorts after every real one ("~" > any digit).
    return member.taken_at or "~"


def _rank(m: Member) -> tuple[int, int, int, str, float, int, str]:
    return (
        -m.pixels,
        0 if _original(m) else 1,
        -(m.bytes or 0),  # the same format at more bytes: the less compressed one
        _date(m),
        m.mtime if m.mtime is not None else float("inf"),
        len(m.location),
        m.location,
    )


#: Why a keeper won, by the first rule of :func:`_rank` that set it apart from the runner-up.
_REASONS = (
    lambda m: f"most pixels ({m.width}x{m.height})",
    lambda m: f"original format ({m.format})",
    lambda m: "same pixels, least compressed",
    lambda m: f"earliest date ({m.taken_at})",
    lambda m: "the oldest file",
    lambda m: "shortest path",
    lambda m: "first by path",
)


def choose_keeper(members: Sequence[Member]) -> tuple[Member, str]:
    """The member to keep, and why, in words."""
    ordered = sorted(members, key=_rank)
    best = ordered[0]
    if len(ordered) == 1:
        return best, "the only copy"
    first, second = _rank(best), _rank(ordered[1])
    rule = next((i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b), -1)
    return best, _REASONS[rule](best) if rule >= 0 else "any: the copies are alike"


class _Sets:
    """Union-find over document ids."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        root = self.parent.setdefault(item, item)
        while root != self.parent[root]:
            root = self.parent[root]
        while item != root:  # path compression
            self.parent[item], item = root, self.parent[item]
        return root

    def join(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[str]]:
        found: dict[str, list[str]] = {}
        for item in self.parent:
            found.setdefault(self.find(item), []).append(item)
        return [sorted(g) for g in found.values() if len(g) > 1]


#: Hashes this close mean the same pixels, resized, re-encoded or converted; the embedding may
#: then move further (a JPEG at quality 40 of a PNG: cosine 0.84-0.88, 0 bits apart).
SAME_PIXELS_BITS = 2
#: How far under the threshold the cosine of such a pair may be.
SAME_PIXELS_SLACK = 0.10


def is_near(cosine: float, bits: int, threshold: float, max_bits: int) -> bool:
    """Whether a pair is a near duplicate (pure): a looser hash match (an edit, a crop) needs
    the embeddings at ``threshold``; a nearly identical hash, within the slack under it.
    Two shots of one subject from a few centimetres apart score 0.887 and 4 bits: neither."""
    if bits <= SAME_PIXELS_BITS:
        return cosine >= threshold - SAME_PIXELS_SLACK
    return bits <= max_bits and cosine >= threshold


def confirmed(
    a: ImageDocument, b: ImageDocument, cosine: float, threshold: float, max_bits: int
) -> bool:
    """Whether two documents close by embedding also look the same to the perceptual hash."""
    if a.phash is None or b.phash is None:
        return False
    return is_near(cosine, hamming(a.phash, b.phash), threshold, max_bits)


def build_groups(
    documents: Mapping[str, ImageDocument],
    near_pairs: Iterable[tuple[str, str]],
    under: Sequence[str] = (),
) -> list[Group]:
    """Exact groups (documents with several locations) and near groups (connected confirmed
    pairs), largest first. ``under``: only locations under these folder prefixes are members
    (a group needs two of them)."""
    sets = _Sets()
    for a, b in near_pairs:
        sets.join(a, b)
    grouped: set[str] = set()
    groups: list[Group] = []
    for ids in sets.groups():
        members = [m for doc_id in ids for m in members_of(documents[doc_id]) if _in(m, under)]
        if len({m.doc_id for m in members}) > 1:
            groups.append(_group(Kind.near, members))
            grouped.update(ids)
    for doc_id, document in documents.items():
        if doc_id in grouped:
            continue
        members = [m for m in members_of(document) if _in(m, under)]
        if len(members) > 1:
            groups.append(_group(Kind.exact, members))
    groups.sort(key=lambda g: (-len(g.members), g.keeper.location))
    return groups


def _in(member: Member, under: Sequence[str]) -> bool:
    return not under or any(member.location.startswith(prefix) for prefix in under)


def _group(kind: Kind, members: list[Member]) -> Group:
    keeper, why = choose_keeper(members)
    ordered = (keeper, *sorted((m for m in members if m is not keeper), key=lambda m: m.location))
    return Group(kind, keeper, why, ordered)
