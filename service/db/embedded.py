"""An embedded Postgres for the demo and for machines without one: pgserver ships the binaries.

There is one embedded database per data root (`SWITCHYARD_DATA_DIR`, default `.switchyard`): the
demo's, in `<root>/demo/pgdata`. `switchyard serve` without DATABASE_URL keeps its own in
`<root>/pgdata`, as it always has. The admin commands pick among the two with `choose_home`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

PGDATA = "pgdata"


class EmbeddedPostgres:
    """Starts a real Postgres in a local data directory, or joins the one already running there.

    pgserver counts the processes holding a server; stop() lets go of this process's hold and
    shuts the server down only when no other process (the demo, say) still holds it.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        # Imported here: it is only needed when no DATABASE_URL is given. Its import asks
        # platformdirs for a runtime directory, which warns where XDG_RUNTIME_DIR is unset
        # (containers, CI) although a fallback works: noise, not news, for a CLI user.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = get_server(str(self.data_dir / PGDATA), cleanup_mode="stop")
        return self.url()

    def url(self, database: str = "postgres") -> str:
        if self._server is None:
            raise RuntimeError("embedded Postgres is not started")
        uri: str = self._server.get_uri(database)
        return uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def demo_home(root: Path) -> Path:
    """The demo's data directory under a data root."""
    return root / "demo"


def is_initialised(home: Path) -> bool:
    return (home / PGDATA / "PG_VERSION").is_file()


def is_running(home: Path) -> bool:
    """A live postmaster owns the data directory (its postmaster.pid names a running process)."""
    try:
        first_line = (home / PGDATA / "postmaster.pid").read_text().split("\n", 1)[0]
        pid = int(first_line.strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user (pgserver runs it as `pgserver` under root)
    return True


def choose_home(root: Path) -> Path:
    """The embedded database an admin command uses: a running one (the demo's first, then
    serve's), else an existing one, else the demo's -- so a command never makes a second."""
    candidates = (demo_home(root), root)
    for test in (is_running, is_initialised):
        for home in candidates:
            if test(home):
                return home
    return candidates[0]
