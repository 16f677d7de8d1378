"""The bulk copy's snapshot (name -> short digest) kept flat: it must answer as the dict it replaces."""

from __future__ import annotations

import random

import pytest

from minsky.catchup import Snapshot, _changes, short_digest


def _old_changes(digests: dict[str, bytes], blobs: list[bytes]) -> tuple[list[bytes], list[str]]:
    before, still, changed = set(digests.values()), set(), []
    for blob in blobs:
        digest = short_digest(blob)
        if digest not in before:
            changed.append(blob)
            continue
        still.add(digest)
    return changed, [name for name, digest in digests.items() if digest not in still]


@pytest.mark.parametrize("collide", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_the_flat_snapshot_answers_as_a_dict(monkeypatch: pytest.MonkeyPatch, seed: int, collide: bool) -> None:
    import minsky.names

    if collide:  # names sharing hashes must still be told apart by name
        monkeypatch.setattr(minsky.names, "name_hash", lambda name: len(name) % 3)
    rng = random.Random(seed)
    pool = [f"s{i}" for i in range(40)] + ["é", "\udcff-lone", "a\x00copy 2", ""]
    contents = [f'{{"session":"x","v":{i}}}'.encode() for i in range(12)]  # few contents: shared digests
    expected: dict[str, bytes] = {}
    snapshot = Snapshot()
    for _ in range(rng.randrange(0, 120)):
        name, digest = rng.choice(pool), short_digest(rng.choice(contents))
        expected[name] = digest  # a name read again replaces its digest, as in a dict
        snapshot.digests[name] = digest
    assert dict(snapshot.digests.items()) == expected and len(snapshot.digests) == len(expected)
    assert sorted(snapshot.digests.values()) == sorted(expected.values())
    for name in pool:
        assert (name in snapshot.digests) == (name in expected)
        assert snapshot.digests.get(name) == expected.get(name)
    now = [rng.choice(contents) for _ in range(rng.randrange(0, 15))]
    changed_blobs, deleted = _old_changes(expected, now)
    found = _changes(snapshot, [b for b in now if b not in changed_blobs], "test")
    assert found.changed == [] and sorted(found.deleted) == sorted(deleted)


def test_a_name_dropped_stays_dropped_and_can_come_back() -> None:
    """A session the catch-up saw deleted leaves the snapshot (a later deletion is not counted
    twice); started again under the same name, it is back."""
    from minsky.snapshot import ShortDigests

    digests = ShortDigests()
    for i in range(5):
        digests[f"n{i}"] = bytes([i]) * 8
    assert digests.pop("n2") == bytes([2]) * 8
    assert "n2" not in digests and digests.pop("n2") is None
    digests["n5"] = bytes([5]) * 8  # a later entry rebuilds the index: the drop must survive it
    assert "n2" not in digests and len(digests) == 5
    assert bytes([2]) * 8 not in set(digests.values())
    digests["n2"] = bytes([7]) * 8
    assert digests.get("n2") == bytes([7]) * 8 and len(digests) == 6
