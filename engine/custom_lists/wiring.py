"""What a server or the CLI opens for the custom lists from the settings: the view, the store, the poller.

The store is ``custom_lists.sqlite`` in ``settings.lists_dir`` (``--lists DIR``; by default the
decision log directory). Card numbers are fingerprinted with the decision log's hash key
(``VERDICT_AUDIT_HASH_KEY``, else ``hash.key`` in that directory, created once), so the CLI and
every worker of a server compute the same fingerprints. Without a directory (``--lists off`` and no
log) there is no store: every list is empty and ListService answers FAILED_PRECONDITION.
"""

from __future__ import annotations

from engine.audit.wiring import hash_key
from engine.custom_lists.refresh import ListRefresher
from engine.custom_lists.snapshot import ListView
from engine.custom_lists.store import ListStore
from engine.settings import Settings

__all__ = ["open_lists"]


def open_lists(settings: Settings) -> tuple[ListView, ListRefresher | None]:
    """A view (empty until the first refresh) and the refresher of its store; (view, None) without a store.

    Raises ``AuditError`` when the hash key file is unreadable, ``sqlite3.Error`` when the store
    cannot be opened. The refresher is not started: start it once the policies are loaded (the
    declarations say which lists are IP lists).
    """
    directory = settings.lists_dir
    if directory is None:
        return ListView({}, hash_key(settings)), None
    from engine.audit.private_files import private_dir

    private_dir(directory)
    view = ListView({}, hash_key(settings, directory))
    store = ListStore(directory, lambda: view.declarations, view.key)
    return view, ListRefresher(store, view)
