"""Which version of a flow decides a request: live, pinned, or the challenger; and which shadow.

A flow's routing file (``policies/<flow>/routing.yaml``) names its live version and, optionally,
a challenger that receives a share of the traffic and shadow versions evaluated on every request
without their outcome being returned::

    live: "1"
    challenger: {version: "2", share: 0.1, key: customer_id}
    shadow: ["3"]

The challenger's share is deterministic: the key field's value is first cleaned as the *live*
version's input schema cleans that field (trimmed, its ``case``, a category's allowed spelling:
``engine.runtime.validation.Validator.cleaner``, the very code validation runs), then hashed (sha256 of
the flow name, key name and value) to a number in [0, 1); values below ``share`` go to the
challenger. So one customer always sees the same version however the caller spells the id
(``C00043``, ``c00043`` and ``" C00043 "`` are one customer when the field says ``case: upper``),
across requests, processes and restarts, and changing the share only moves the customers between
the old and the new share. The live version's schema is used even when the challenger's cleans the
key differently (the loader warns, ``routing_key_cleaning_differs``), so a change of challenger
never reshuffles customers. A request that pins a ``version`` gets that version ("pinned"); a
request without the key, with a key the live version's schema refuses, or with a key that is not
text, a number or true/false gets the live version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Challenger", "bucket", "key_text"]

_SCALE = float(1 << 64)


@dataclass(frozen=True, slots=True)
class Challenger:
    """A challenger version and the deterministic share of requests it decides."""

    version: str
    share: float
    key: str
    # cleans the raw key value as the live version's validation does (None: refused); None: raw value
    clean: Callable[[Any], Any] | None = field(default=None, compare=False, repr=False)

    def takes(self, flow: str, input: Mapping[str, Any]) -> bool:
        """True when this request (by its cleaned key value) belongs to the challenger's share."""
        value = input.get(self.key)
        if self.clean is not None and value is not None:
            value = self.clean(value)
        text = key_text(value)
        return text is not None and bucket(flow, self.key, text) < self.share


def key_text(value: object) -> str | None:
    """The routing text of a key value, the same however a caller encodes it; None: not routable.

    Text is trimmed; whole numbers route the same as integers (``123`` and ``123.0``, which is how
    a ``google.protobuf.Struct`` carries numbers).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value.strip()
        return text or None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def bucket(flow: str, key: str, text: str) -> float:
    """A uniform, stable number in [0, 1) for a key value of a flow."""
    digest = hashlib.sha256(f"{flow}\x00{key}\x00{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE
