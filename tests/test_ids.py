"""Record ids: the 18-character checksum, normalisation of what clients send, and new-id generation."""

from __future__ import annotations

import pytest

from interlink import ids

REAL_IDS = [  # /work/shared/reference/wire.md §2.8, from real orgs
    ("001D000000IqhSL", "IAZ"),
    ("001D000000Iomaz", "IAB"),
    ("001RM000003oLnn", "YAE"),
]


@pytest.mark.parametrize(("id15", "suffix"), REAL_IDS)
def test_checksum_matches_real_ids(id15: str, suffix: str) -> None:
    assert ids.checksum(id15) == suffix
    assert ids.to_18(id15) == id15 + suffix


def test_checksum_edge_cases() -> None:
    assert ids.checksum("000000000000000") == "AAA"
    assert ids.checksum("ZZZZZZZZZZZZZZZ") == "555"
    assert ids.checksum("a0000b0000c0000") == "AAA"  # lower case letters do not count


@pytest.mark.parametrize(("id15", "suffix"), REAL_IDS)
def test_normalize_accepts_15_and_18_characters(id15: str, suffix: str) -> None:
    full = id15 + suffix
    assert ids.normalize(id15) == full
    assert ids.normalize(full) == full
    assert ids.is_valid(id15) and ids.is_valid(full)


@pytest.mark.parametrize("bad", [
    "001D000000IqhSL9AZ",   # suffix characters are A-Z0-5 only
    "0010000000IqhSL5AA",   # the suffix marks a digit as upper case
    "001D000000IqhS",       # 14 characters
    "001D000000IqhSLI",     # 16
    "001D000000IqhSLIA",    # 17
    "001D000000IqhSLIAZX",  # 19
    "001D000000Iqh-L",
    "001D000000Iqh L",
    "",
    None,
    1234567890123456,
    "001D000000IqhSL\n",
])
def test_normalize_rejects_malformed_ids(bad: object) -> None:
    assert ids.normalize(bad) is None
    assert not ids.is_valid(bad)
    with pytest.raises(ValueError):
        ids.to_18(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("mangled", ["001d000000IqhSLIAZ", "001D000000IQHSLIAZ", "001d000000iqhsliaz",
                                     "001D000000IQHSLIAZ".lower()])
def test_18_character_ids_are_case_insensitive(mangled: str) -> None:
    # The suffix restores the case of the first 15 characters, as on the platform.
    assert ids.normalize(mangled) == "001D000000IqhSLIAZ"


def test_the_suffix_wins_over_the_letters_it_disagrees_with() -> None:
    assert ids.normalize("001D000000IqhSLIAB") == "001D000000IqhslIAB"


def test_generated_ids_are_unique_increasing_and_well_formed() -> None:
    generator = ids.IdGenerator()
    generated = [generator.new("001") for _ in range(100_000)]
    assert len(set(generated)) == len(generated)
    bodies = [record_id[:15] for record_id in generated]
    assert bodies == sorted(bodies)  # increasing within a process
    assert len(set(bodies)) == len(bodies)  # unique even when compared case-sensitively on 15 characters
    assert len({record_id.lower() for record_id in generated}) == len(generated)  # and case-insensitively on 18
    for record_id in generated[:: 997]:
        assert len(record_id) == 18 and record_id.startswith("001")
        assert ids.normalize(record_id) == record_id
        assert ids.normalize(record_id[:15]) == record_id


def test_generators_with_different_process_tags_do_not_collide() -> None:
    first, second = ids.IdGenerator(process_tag=1), ids.IdGenerator(process_tag=2)
    a: list[str] = []
    b: list[str] = []
    for _ in range(20_000):
        a.append(first.new("003"))
        b.append(second.new("003"))
    assert not set(a) & set(b)
    assert len(set(a)) == len(set(b)) == 20_000


def test_new_id_checks_the_prefix() -> None:
    with pytest.raises(ValueError):
        ids.IdGenerator().new("01")
    assert ids.new_id("a01").startswith("a01")
    assert ids.key_prefix(ids.new_id("500")) == "500"
