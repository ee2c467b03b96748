"""An embedded Postgres for the demo and for machines without one: pgserver ships the binaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class EmbeddedPostgres:
    """Starts a real Postgres in a local data directory; stop() shuts it down."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        import pgserver  # imported here: it is only needed when no DATABASE_URL is given

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(str(self.data_dir / "pgdata"), cleanup_mode="stop")
        return self.url()

    def url(self, database: str = "postgres") -> str:
        if self._server is None:
            raise RuntimeError("embedded Postgres is not started")
        return self._server.get_uri(database)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
