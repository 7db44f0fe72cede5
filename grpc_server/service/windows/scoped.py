"""Window scopes: stream windows of ad-hoc callers kept apart from the live shippers' windows.

The default scope ("") is the server's own store, with its bounds. A request naming a ``window_scope``
(a Splunk real-time search names its search id) gets a store of its own with a shorter TTL and a quota
(``scope_max_sessions``), so however much an ad-hoc search scores it can only evict its own windows, never
the default scope's. At most ``max_scopes`` ad-hoc scopes are kept; the least recently used goes first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from logwarden.grpc_server.service.windows import WindowStore

DEFAULT_SCOPE = ""
MAX_SCOPE_BYTES = 256


class ScopedWindows:
    """The window store of each scope: ``default`` for "", ``make(scope)`` for the others (made on first use)."""

    def __init__(self, default: WindowStore, make: Callable[[str], WindowStore], max_scopes: int = 100) -> None:
        self.default = default
        self.make = make
        self.max_scopes = max_scopes
        self._scopes: OrderedDict[str, WindowStore] = OrderedDict()

    def __len__(self) -> int:
        return len(self._scopes)

    async def store(self, scope: str) -> WindowStore:
        if scope == DEFAULT_SCOPE:
            return self.default
        found = self._scopes.get(scope)
        if found is not None:
            self._scopes.move_to_end(scope)
            return found
        store = self._scopes[scope] = self.make(scope)
        while len(self._scopes) > self.max_scopes:
            _, oldest = self._scopes.popitem(last=False)
            await oldest.close()
        return store

    async def close(self) -> None:
        for store in self._scopes.values():
            await store.close()
        self._scopes.clear()
        await self.default.close()
