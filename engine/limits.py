"""Every fixed limit of a request and of its error reply, in one place (documented in docs/limits.md).

Why these figures:

- A gRPC client refuses trailing metadata over 8 KiB by default and reports RESOURCE_EXHAUSTED
  whatever status the server sent (grpc/grpc#37852; ``grpc.max_metadata_size``, 8 KiB soft and
  16 KiB hard). An error reply (status message plus trailers) is therefore held to
  ``MAX_STATUS_MESSAGE_BYTES + MAX_FIELD_ERRORS_TRAILER_BYTES`` = 5 KiB, well under that.
- The cost of checking a bad request must stay in proportion to deciding a good one: the number of
  input fields, of reported errors and of "did you mean" look-ups are capped, and every quoted
  name or value is clipped, so a reply never grows with the request.
- Names are at most what a policy file may declare (``engine.schema``: identifiers 64 characters,
  versions 32), request ids at most ``MAX_REQUEST_ID_CHARS`` (a UUID is 36, a ULID 26).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_BATCH_REQUESTS",
    "MAX_FIELD_ERRORS",
    "MAX_FIELD_ERRORS_TRAILER_BYTES",
    "MAX_FLOW_CHARS",
    "MAX_INPUT_FIELDS",
    "MAX_QUOTED_CHARS",
    "MAX_ERROR_MESSAGE_CHARS",
    "MAX_REQUEST_ID_CHARS",
    "MAX_STATUS_MESSAGE_BYTES",
    "MAX_SUGGESTIONS",
    "MAX_VERSION_CHARS",
    "MAX_WATCH_STREAMS",
    "SHADOW_QUEUE_BYTES",
    "MAX_METRIC_SERIES",
    "mapping_bytes",
]

#: Fields a request's ``input`` may carry; also the most input fields a flow may declare.
MAX_INPUT_FIELDS = 256
#: Requests in one DecideBatch call (more: INVALID_ARGUMENT, nothing decided); the message size
#: limit (``max_message_bytes``) also bounds the whole call.
MAX_BATCH_REQUESTS = 1000
#: Field errors listed in one reply; the rest are counted ("and 80 more").
MAX_FIELD_ERRORS = 10
#: Unknown field names that get a "did you mean" look-up in one request (the first ones, sorted).
MAX_SUGGESTIONS = 3
#: Characters of a field name or value quoted in an error message (longer ones end in "…").
MAX_QUOTED_CHARS = 64
#: Characters of one field error's message.
MAX_ERROR_MESSAGE_CHARS = 200
#: Characters of a ``request_id`` (longer ones are refused with INVALID_ARGUMENT).
MAX_REQUEST_ID_CHARS = 128
#: Characters of a requested flow name (a flow name in a policy file is at most 64).
MAX_FLOW_CHARS = 64
#: Characters of a requested version (a version in a policy file is at most 32).
MAX_VERSION_CHARS = 32
#: UTF-8 bytes of an error reply's status message.
MAX_STATUS_MESSAGE_BYTES = 2048
#: Bytes of the ``verdict-field-errors`` trailer (JSON, ASCII).
MAX_FIELD_ERRORS_TRAILER_BYTES = 3072
#: Estimated bytes of the requests waiting in the shadow queue (``engine.shadow``).
SHADOW_QUEUE_BYTES = 16 * 1024 * 1024
#: Open ``CaseService.WatchCases`` streams per server process: each holds one request thread (16
#: by default) for as long as it is open, so more would starve ``Decide``.
MAX_WATCH_STREAMS = 4
#: Distinct metric series (name plus labels) one process keeps (``engine.metrics``).
MAX_METRIC_SERIES = 10_000

# Estimated bytes of one flat dict entry on CPython 3.11, 64-bit: the slot in the table, the key's
# string object header, a float or small object value (tracemalloc on request inputs: 100-130).
_ENTRY_BYTES = 160
_STR_HEADER = 49


def mapping_bytes(values: Mapping[str, Any]) -> int:
    """Estimated bytes of a flat mapping of plain values (at or above tracemalloc's measure).

    Counts, per entry, a fixed ``_ENTRY_BYTES`` plus the characters of the key and of a text value;
    nested values count their ``repr`` length. Linear in the entries, no allocation per entry.
    """
    size = 240  # the dict object itself
    for key, value in values.items():
        size += _ENTRY_BYTES + len(key)
        if isinstance(value, str):
            size += _STR_HEADER + len(value)
        elif isinstance(value, (list, dict, tuple)):
            size += 2 * len(repr(value))
    return size
