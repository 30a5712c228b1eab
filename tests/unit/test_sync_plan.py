"""The sync planner: what changes, decided from listings and hashes alone."""

from __future__ import annotations

from orchestrator.search.base import Location
from orchestrator.sync_plan import (
    Change,
    DiskListing,
    FileStat,
    Plan,
    plan,
    removal_fraction,
    triage,
)

ROOT = "/photos/"
A, B, C = "a" * 64, "b" * 64, "c" * 64


def at(name: str, size: int = 10, mtime: float = 1.0) -> Location:
    return Location(ROOT + name, size, mtime)


def disk(*files: tuple[str, int, float], unreadable: tuple[str, ...] = ()) -> DiskListing:
    return DiskListing({ROOT + n: FileStat(s, m) for n, s, m in files}, unreadable)


def counts(result: Plan) -> dict[str, int]:
    return {change.value: n for change, n in result.counts.items() if n}


def test_matching_size_and_mtime_is_unchanged_and_never_hashed() -> None:
    recorded = {A: (at("x.jpg"),)}
    sorted_out = triage(disk(("x.jpg", 10, 1.0)), recorded, ROOT)
    assert sorted_out.unchanged == (ROOT + "x.jpg",)
    assert sorted_out.candidates == ()
    assert sorted_out.gone == ()
    result = plan(disk(("x.jpg", 10, 1.0)), recorded, ROOT, {}, {})
    assert counts(result) == {"unchanged": 1}
    assert result.index == ()
    assert result.locations == {}
    assert result.delete == ()


def test_a_new_image_is_indexed_and_other_files_are_not_read() -> None:
    listing = disk(("new.jpg", 5, 2.0), ("notes.txt", 5, 2.0))
    assert triage(listing, {}, ROOT).candidates == (ROOT + "new.jpg",)
    result = plan(listing, {}, ROOT, {ROOT + "new.jpg": A}, {})
    assert result.index == (ROOT + "new.jpg",)
    assert result.locations == {}  # the indexer records a single location itself
    assert counts(result) == {"new": 1}


def test_a_move_updates_the_location_without_indexing() -> None:
    recorded = {A: (at("x.jpg"),)}
    listing = disk(("sub/x.jpg", 10, 3.0))
    result = plan(listing, recorded, ROOT, {ROOT + "sub/x.jpg": A}, {})
    assert result.index == ()
    assert result.locations == {A: (at("sub/x.jpg", 10, 3.0),)}
    assert result.delete == ()
    assert counts(result) == {"moved": 1}
    assert result.changes[0].detail == f"from {ROOT}x.jpg"


def test_an_edit_indexes_the_new_content_and_the_old_document_goes() -> None:
    recorded = {A: (at("x.jpg"),)}
    listing = disk(("x.jpg", 12, 5.0))
    result = plan(listing, recorded, ROOT, {ROOT + "x.jpg": B}, {})
    assert result.index == (ROOT + "x.jpg",)
    assert result.delete == (A,)
    assert counts(result) == {"edited": 1}


def test_an_edit_leaves_the_old_content_its_other_copy() -> None:
    recorded = {A: (at("x.jpg"), at("y.jpg"))}
    listing = disk(("x.jpg", 12, 5.0), ("y.jpg", 10, 1.0))
    result = plan(listing, recorded, ROOT, {ROOT + "x.jpg": B}, {})
    assert result.locations == {A: (at("y.jpg"),)}
    assert result.delete == ()


def test_deleting_the_first_copy_keeps_the_document_with_the_second() -> None:
    recorded = {A: (at("one.jpg"), at("two.jpg"))}
    result = plan(disk(("two.jpg", 10, 1.0)), recorded, ROOT, {}, {})
    assert result.locations == {A: (at("two.jpg"),)}
    assert result.delete == ()
    assert counts(result) == {"removed": 1, "unchanged": 1}


def test_deleting_the_last_location_deletes_the_document() -> None:
    result = plan(disk(), {A: (at("x.jpg"),)}, ROOT, {}, {})
    assert result.delete == (A,)
    assert counts(result) == {"removed": 1}
    assert removal_fraction(result, 1) == 1.0


def test_locations_outside_the_folder_are_kept() -> None:
    url = Location("https://example.org/x.jpg")
    result = plan(disk(), {A: (url, at("x.jpg"))}, ROOT, {}, {})
    assert result.locations == {A: (url,)}
    assert result.delete == ()


def test_a_copy_of_content_indexed_elsewhere_is_recorded_not_inferred() -> None:
    elsewhere = {A: (Location("/other/x.jpg", 10, 1.0),)}
    result = plan(disk(("x.jpg", 10, 1.0)), {}, ROOT, {ROOT + "x.jpg": A}, elsewhere)
    assert result.index == ()
    assert result.locations == {A: (*elsewhere[A], at("x.jpg"))}
    assert counts(result) == {"new": 1}
    assert result.copied == 1


def test_two_copies_of_new_content_are_indexed_once_with_both_locations() -> None:
    listing = disk(("x.jpg", 10, 1.0), ("y.jpg", 10, 2.0))
    result = plan(listing, {}, ROOT, {ROOT + "x.jpg": A, ROOT + "y.jpg": A}, {})
    assert result.index == (ROOT + "x.jpg",)
    assert result.locations == {A: (at("x.jpg"), at("y.jpg", 10, 2.0))}
    assert counts(result) == {"new": 2}


def test_a_touched_file_is_unchanged_but_its_stat_is_refreshed() -> None:
    recorded = {A: (at("x.jpg"),)}
    result = plan(disk(("x.jpg", 10, 9.0)), recorded, ROOT, {ROOT + "x.jpg": A}, {})
    assert counts(result) == {"unchanged": 1}
    assert result.locations == {A: (at("x.jpg", 10, 9.0),)}
    assert result.index == ()


def test_an_unreadable_file_fails_and_keeps_its_record() -> None:
    recorded = {A: (at("x.jpg"),)}
    result = plan(disk(("x.jpg", 11, 2.0)), recorded, ROOT, {ROOT + "x.jpg": None}, {})
    assert counts(result) == {"failed": 1}
    assert result.locations == {}
    assert result.delete == ()


def test_an_unreadable_subfolder_keeps_its_documents() -> None:
    recorded = {A: (at("locked/x.jpg"),), B: (at("y.jpg"),)}
    listing = disk(unreadable=(ROOT + "locked/",))
    sorted_out = triage(listing, recorded, ROOT)
    assert sorted_out.gone == (ROOT + "y.jpg",)
    result = plan(listing, recorded, ROOT, {}, {})
    assert result.delete == (B,)


def test_refused_removals_still_apply_moves() -> None:
    recorded = {A: (at("x.jpg"),), B: (at("y.jpg"),), C: (at("z.jpg"),)}
    listing = disk(("moved/x.jpg", 10, 1.0))
    result = plan(listing, recorded, ROOT, {ROOT + "moved/x.jpg": A}, {}, keep_gone=True)
    assert result.delete == ()
    assert result.locations == {A: (at("moved/x.jpg"),)}
    assert counts(result) == {"moved": 1}


def test_a_path_recorded_twice_after_an_interrupted_edit_is_settled() -> None:
    # The new content was indexed, the old document not yet updated: both claim the path.
    recorded = {A: (at("x.jpg", 10, 1.0),), B: (at("x.jpg", 12, 5.0),)}
    listing = disk(("x.jpg", 12, 5.0))
    assert triage(listing, recorded, ROOT).candidates == (ROOT + "x.jpg",)
    result = plan(listing, recorded, ROOT, {ROOT + "x.jpg": B}, {})
    assert result.delete == (A,)
    assert result.index == ()
    assert counts(result) == {"unchanged": 1}


def test_the_counts_have_every_change() -> None:
    assert [c.value for c in Change] == ["new", "moved", "edited", "removed", "unchanged", "failed"]
