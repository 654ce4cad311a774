"""Files that hold customer data are private whatever the umask: directories mode 0700, files 0600.

``mkdir``'s and ``open``'s modes are reduced by the umask, so the mode is set explicitly after each
create (``private_dir``, ``private_file``). Used by the decision log (``engine.audit.segments``) and
the custom lists' store.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from engine.audit.errors import AuditError

__all__ = ["DIR_MODE", "FILE_MODE", "private_dir", "private_file"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(directory: Path) -> None:
    """Create ``directory`` (and missing parents) as mode 0700, and set 0700 if it exists.

    ``mkdir``'s mode is reduced by the umask, so the mode is set explicitly afterwards. Raises
    AuditError when it cannot be created or changed.
    """
    try:
        missing = []
        path = Path(directory)
        while not path.exists():
            missing.append(path)
            path = path.parent
        for new in reversed(missing):
            new.mkdir(mode=DIR_MODE, exist_ok=True)
            os.chmod(new, DIR_MODE)
        if stat.S_IMODE(os.stat(directory).st_mode) != DIR_MODE:
            os.chmod(directory, DIR_MODE)
    except OSError as exc:
        raise AuditError(f"cannot create audit directory {directory}: {exc.strerror or exc}") from None


def private_file(fd: int) -> None:
    """Set the open file ``fd`` to mode 0600. Raises OSError as ``os.fchmod``."""
    os.fchmod(fd, FILE_MODE)  # the mode given to open() is reduced by the umask; this is exact
