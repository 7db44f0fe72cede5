"""In-process window store: an LRU dict with a TTL per entry (the default backend).

Bounded by count (``max_sessions``) and by bytes (``max_bytes``, an estimate: the key, the stored keys'
tuple, and ``ENTRY_OVERHEAD`` for the dict entry; the template id strings inside are shared by every
window that holds them, see ``scheduler.key_text``). The least recently used windows go first.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from logwarden.grpc_server.service.windows import Window, WindowStore

Stored = tuple[str, tuple[str | None, ...]] | Window
ENTRY_OVERHEAD = 200  # the ordered dict's entry and node, the (expiry, window) pair, the float
UNBOUNDED = sys.maxsize


class MemoryWindowStore(WindowStore):
    """At most ``max_sessions`` windows and about ``max_bytes`` bytes; the least recently used go first,
    expired ones on access."""

    def __init__(
        self,
        max_sessions: int,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = UNBOUNDED,
    ) -> None:
        self.max_sessions = max_sessions
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, Stored, int]] = OrderedDict()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._data)

    async def get_many(self, keys: Sequence[str]) -> list[Window | None]:
        now = self._clock()
        out: list[Window | None] = []
        for key in keys:
            entry = self._data.get(key)
            if entry is None or entry[0] <= now:
                self._drop(key)
                out.append(None)
                continue
            self._data.move_to_end(key)
            out.append(_load(entry[1]))
        return out

    async def put_many(self, items: Mapping[str, Window]) -> None:
        now = self._clock()
        expires = now + self.ttl_s
        for key, window in items.items():
            self._drop(key)
            stored = _store(window)
            cost = _cost(key, stored)
            self._data[key] = (expires, stored, cost)
            self.nbytes += cost
        while self._data:  # drop expired entries from the old end, then enforce the bounds
            oldest_key, (oldest_expiry, _, _) = next(iter(self._data.items()))
            if oldest_expiry > now and len(self._data) <= self.max_sessions and self.nbytes <= self.max_bytes:
                break
            self._drop(oldest_key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._drop(key)

    async def close(self) -> None:
        self._data.clear()
        self.nbytes = 0

    def _drop(self, key: str) -> None:
        entry = self._data.pop(key, None)
        if entry is not None:
            self.nbytes -= entry[2]


def _cost(key: str, stored: Stored) -> int:
    """The estimated bytes of one entry (the template id strings are shared, so not counted)."""
    if type(stored) is tuple:
        return sys.getsizeof(key) + sys.getsizeof(stored[1]) + ENTRY_OVERHEAD
    return sys.getsizeof(key) + 2 * len(json.dumps(stored, default=str)) + ENTRY_OVERHEAD


def _store(window: Window) -> Stored:
    """What the dict keeps: for the usual shape ``{"version": str, "keys": [str | None, ...]}`` a tuple of strings,
    which the garbage collector stops tracking (tens of thousands of live windows would otherwise make every full
    collection walk them: tens of ms each); a deep copy of anything else."""
    version, keys = window.get("version"), window.get("keys")
    if (
        len(window) == 2
        and type(version) is str
        and type(keys) is list
        and all(k is None or type(k) is str for k in keys)
    ):
        return (version, tuple(keys))
    return copy.deepcopy(window)


def _load(stored: Stored) -> Window:
    if type(stored) is tuple:
        return {"version": stored[0], "keys": list(stored[1])}
    return copy.deepcopy(stored)
