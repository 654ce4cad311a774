"""Custom block and allow lists that policy owners maintain without a new flow version (docs/lists.md).

``kinds`` (what an entry is and its normal form), ``declarations`` (``policies/custom_lists.yaml``),
``snapshot`` (the in-memory snapshot and the view flows read), ``store`` (SQLite with the audit
trail), ``refresh`` (a server's poller). Distinct from the sanctions/PEP screening lists
(``engine.screening``, files under ``lists/``).
"""

from engine.custom_lists.declarations import DECLARATIONS_FILE, ListDeclaration, read_declarations
from engine.custom_lists.kinds import ListKind, entry_key, probe_key
from engine.custom_lists.snapshot import Entry, ListSnapshot, ListView

__all__ = [
    "DECLARATIONS_FILE",
    "Entry",
    "ListDeclaration",
    "ListKind",
    "ListSnapshot",
    "ListView",
    "entry_key",
    "probe_key",
    "read_declarations",
]
