"""Which version of a flow decides a request: live, pinned, or the challenger; and which shadow.

A flow's routing file (``policies/<flow>/routing.yaml``) names its live version and, optionally,
a challenger that receives a share of the traffic and shadow versions evaluated on every request
without their outcome being returned::

    live: "1"
    challenger: {version: "2", share: 0.1, key: customer_id}
    shadow: ["3"]

The challenger's share is deterministic: the key field's value is hashed (sha256 of the flow name,
key name and value) to a number in [0, 1); values below ``share`` go to the challenger. So one
customer always sees the same version, across requests, processes and restarts, and changing the
share only moves the customers between the old and the new share. A request that pins a
``version`` gets that version ("pinned"); a request without the key (or with a key that is not
text, a number or true/false) gets the live version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Challenger", "bucket", "key_text"]

_SCALE = float(1 << 64)


@dataclass(frozen=True, slots=True)
class Challenger:
    """A challenger version and the deterministic share of requests it decides."""

    version: str
    share: float
    key: str

    def takes(self, flow: str, input: Mapping[str, Any]) -> bool:
        """True when this request (by its key value) belongs to the challenger's share."""
        text = key_text(input.get(self.key))
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
