"""In-process window store: an LRU dict with a TTL per entry (the default backend)."""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from logwarden.grpc_server.windows import Window, WindowStore


class MemoryWindowStore(WindowStore):
    """At most ``max_sessions`` windows; the least recently used go first, expired ones on access."""

    def __init__(self, max_sessions: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, Window]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    async def get_many(self, keys: Sequence[str]) -> list[Window | None]:
        now = self._clock()
        out: list[Window | None] = []
        for key in keys:
            entry = self._data.get(key)
            if entry is None or entry[0] <= now:
                self._data.pop(key, None)
                out.append(None)
                continue
            self._data.move_to_end(key)
            out.append(_copy(entry[1]))
        return out

    async def put_many(self, items: Mapping[str, Window]) -> None:
        now = self._clock()
        expires = now + self.ttl_s
        for key, window in items.items():
            self._data[key] = (expires, _copy(window))
            self._data.move_to_end(key)
        while self._data:  # drop expired entries from the old end, then enforce the size bound
            oldest_key, (oldest_expiry, _) = next(iter(self._data.items()))
            if oldest_expiry > now and len(self._data) <= self.max_sessions:
                break
            del self._data[oldest_key]

    async def close(self) -> None:
        self._data.clear()


def _copy(window: Window) -> Window:
    """A copy sharing nothing mutable with ``window``; flat lists of keys (the usual shape) without deepcopy."""
    out = {}
    for name, value in window.items():
        if isinstance(value, list) and all(v is None or type(v) is str for v in value):
            out[name] = list(value)
        elif value is None or type(value) in (str, int, float, bool):
            out[name] = value
        else:
            out[name] = copy.deepcopy(value)
    return out
