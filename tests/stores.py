"""Ways for a test to reach a store as other processes do: through a store server."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

from core.duckdb_store import DuckDBStore
from core.read_cache import DEFAULT_MB
from core.remote import RemoteStore, address_for
from core.store_server import StoreServer, announce, claim


@contextmanager
def serving(held: DuckDBStore) -> Iterator[RemoteStore]:
    """A store server for `held` on a thread of the test process: requests cross the real socket and transport,
    and other processes started meanwhile reach the store through it."""
    address = address_for(held.path.resolve())
    fd = claim(address, timeout=5)
    server = StoreServer(held, address, DEFAULT_MB * 2**20)  # as served in production: reads answered until a write
    announce(fd)
    try:
        yield RemoteStore(held.path, timeout=30)
    finally:
        server.shutdown()
        os.close(fd)
