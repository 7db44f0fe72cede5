"""Stream-mode session windows: the last N log keys per (source, session), with TTL and LRU eviction.

One tiny async interface, one short module per backend (``memory`` now; ``redis`` to share windows
between replicas). A window is JSON-serialisable data::

    {"version": "<model version the keys belong to>", "keys": ["12", null, "7", ...]}

Keys are template ids as strings, ``null`` for a template never seen in training.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

Window = dict[str, Any]


def window_key(source: str, session: str, model: str = "") -> str:
    """The store key of a (source, session) pair of a model route ("": the default); unambiguous for any strings."""
    parts = [source, session] if not model else [model, source, session]
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))


class WindowStore(ABC):
    """Bounded, expiring storage of windows. Implementations keep ``ttl_s`` since the last put."""

    @abstractmethod
    async def get_many(self, keys: Sequence[str]) -> list[Window | None]:
        """The windows for ``keys``, in order; None where absent or expired."""

    @abstractmethod
    async def put_many(self, items: Mapping[str, Window]) -> None:
        """Store (replace) windows and restart their TTL."""

    @abstractmethod
    async def delete_many(self, keys: Sequence[str]) -> None:
        """Forget the windows of ``keys`` (sessions that ended); absent keys are ignored."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""
