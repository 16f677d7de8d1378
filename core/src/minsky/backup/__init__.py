"""Backups: written so that no two can collide, restored exactly as they were checked.

- ``write``: the backup file format, streamed into a name taken exclusively;
- ``read``: a backup opened once and inspected in one streaming pass (``Backup``);
  ``layout`` knows minsky's format and the original Minsky's, ``scan`` streams JSON;
- ``newest``: a directory's newest backup, by minsky's own metadata;
- ``files``: directories that cannot be redirected, regular files only, exclusive names;
- ``ledger``: the last backup this machine made.

A backup is itself a JSON store, so restoring one is a migration from it.
"""

from __future__ import annotations

from minsky.backup.files import prepare_directory
from minsky.backup.layout import META_KEY
from minsky.backup.ledger import last_backup, remember_backup
from minsky.backup.newest import Chosen, resolve_backup
from minsky.backup.read import Backup, NotAsSurveyed, open_backup
from minsky.backup.write import PREFIX, backup_name, write_backup

__all__ = [
    "META_KEY",
    "PREFIX",
    "Backup",
    "Chosen",
    "NotAsSurveyed",
    "backup_name",
    "last_backup",
    "open_backup",
    "prepare_directory",
    "remember_backup",
    "resolve_backup",
    "write_backup",
]
