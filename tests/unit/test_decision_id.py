"""Decision ids are random UUID4s in the form ``uuid.uuid4().hex`` gives."""

import uuid

from engine.runtime.service import new_decision_id


def test_decision_ids_are_version_4_rfc_4122_uuids_in_hex():
    """Every id is 32 lowercase hex digits that parse as a UUID of version 4 and the RFC 4122 variant, and ids do not repeat."""
    ids = [new_decision_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(hex=text)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, text)


def test_the_random_bits_vary_in_every_position():
    """Each of the 30 hex digits that are not fixed by the UUID4 format takes more than one value over 2,000 ids."""
    ids = [new_decision_id() for _ in range(2000)]
    varying = [i for i in range(32) if len({t[i] for t in ids}) > 1]
    assert varying == [i for i in range(32) if i != 12]  # digit 12 is the version; digit 16 holds 2 random bits
