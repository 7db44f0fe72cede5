"""Template ids for log lines: one masking pass, an exact-match cache, and drain3's ``Drain`` behind it.

``learn`` (training) returns exactly the cluster ids that ``Drain.add_log_message`` returns for the same
masked lines; the cache is only a speed-up. A cached ``masked line -> cluster`` answer can go stale
even though cluster ids never change: a later line can create a cluster (or generalise a template)
that drain3 would now prefer for that masked line. Drain only ever compares a line with clusters of
the same token count, and every change happens inside one token-count subtree, so each cache entry
records the generation of its token count and is trusted only while no cluster of that token count
was created or changed since.

``match`` (serving) never changes the clusters: a template never seen in training gives ``None``.

Memory: the caches are keyed by masked lines, which an attacker chooses, so each is bounded in bytes as
well as in entries (``cache_bytes``, a run-time setting: ``logwarden serve --parser-cache-max-bytes``):
the serving caches evict their least recently used lines past either bound; the training cache is
cleared when full. A key costs ``sys.getsizeof(line)`` plus ``ENTRY_OVERHEAD`` bytes.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

from drain3.drain import Drain, LogCluster

from logwarden.core.errors import LogWardenError
from logwarden.core.parsing.masking import PARAM, Masker, MaskingConfig

STATE_VERSION = 1
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
ENTRY_OVERHEAD = 100  # an ordered dict's entry and node, and the value's reference, roughly
DRAIN_PARAM = "<:*:>"
"""Drain's own wildcard. It differs from the masks' ``<*>`` on purpose: Drain does not count wildcard
positions as similar tokens, and masked values (numbers, ids) should count, as they do with drain3's
named masks (``<:NUM:>``). ``template()`` shows both as ``<*>``."""


@dataclass(frozen=True)
class ParserConfig:
    """Drain's parameters, the masks, and the cache sizes."""

    sim_th: float = 0.55  # a little stricter than drain3's 0.4: better grouping on loghub 2k (benchmarks/parsing.py)
    depth: int = 4  # deeper trees split on variable tokens near the start of a line ("user bob ...")
    max_children: int = 100
    max_clusters: int | None = None
    extra_masks: tuple[tuple[str, str], ...] = ()
    cache_size: int = 200_000
    miss_cache_size: int = 20_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.sim_th <= 1.0:
            raise LogWardenError(f"parser sim_th must be in [0, 1], got {self.sim_th}")
        if self.depth < 3:
            raise LogWardenError(f"parser depth must be at least 3, got {self.depth}")
        if self.max_children < 2:
            raise LogWardenError(f"parser max_children must be at least 2, got {self.max_children}")
        if self.max_clusters is not None and self.max_clusters < 1:
            raise LogWardenError(f"parser max_clusters must be positive or None, got {self.max_clusters}")
        if self.cache_size < 0 or self.miss_cache_size < 0:
            raise LogWardenError("parser cache sizes must not be negative")
        object.__setattr__(self, "extra_masks", tuple((str(n), str(r)) for n, r in self.extra_masks))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["extra_masks"] = [list(m) for m in self.extra_masks]
        return data

    @classmethod
    def from_dict(cls, data: Any) -> ParserConfig:
        if not isinstance(data, dict):
            raise LogWardenError("parser state: 'config' must be an object")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise LogWardenError(f"parser state: unknown config key(s): {', '.join(sorted(unknown))}")
        checks = {
            "sim_th": (int, float),
            "depth": int,
            "max_children": int,
            "cache_size": int,
            "miss_cache_size": int,
            "max_clusters": (int, type(None)),
            "extra_masks": list,
        }
        for key, types in checks.items():
            if key in data and (not isinstance(data[key], types) or isinstance(data[key], bool)):
                raise LogWardenError(f"parser state: config.{key} has the wrong type: {data[key]!r}")
        masks = data.get("extra_masks", [])
        if not all(isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m) for m in masks):
            raise LogWardenError("parser state: config.extra_masks must be a list of [name, regex] pairs")
        return cls(**{**data, "extra_masks": tuple(tuple(m) for m in masks)})


class BoundedCache:
    """An LRU map from strings, bounded by ``max_entries`` and by ``max_bytes`` (keys' estimated size)."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.nbytes = 0
        self._data: OrderedDict[str, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:
        value = self._data.get(key, default)
        if value is not default:
            self._data.move_to_end(key)
        return value

    def touch(self, key: str) -> None:
        self._data.move_to_end(key)

    def put(self, key: str, value: Any) -> None:
        cost = _cost(key)
        if self.max_entries <= 0 or cost > self.max_bytes:
            return
        if key in self._data:
            self._data.move_to_end(key)
        else:
            self.nbytes += cost
        self._data[key] = value
        while len(self._data) > self.max_entries or self.nbytes > self.max_bytes:
            old, _ = self._data.popitem(last=False)
            self.nbytes -= _cost(old)

    def clear(self) -> None:
        self._data.clear()
        self.nbytes = 0


def _cost(key: str) -> int:
    return sys.getsizeof(key) + ENTRY_OVERHEAD


class TemplateParser:
    """Masks lines and maps them to stable drain3 cluster ids (the log keys)."""

    def __init__(self, config: ParserConfig | None = None, *, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.config = config or ParserConfig()
        self.masker = Masker(MaskingConfig(extra=self.config.extra_masks))
        self._mask = self.masker.mask
        self.drain = Drain(
            depth=self.config.depth,
            sim_th=self.config.sim_th,
            max_children=self.config.max_children,
            max_clusters=self.config.max_clusters,
            param_str=DRAIN_PARAM,
        )
        # masked line -> (cluster, generation cell of its token count, generation when cached)
        self._learned: dict[str, tuple[LogCluster, list[int], int]] = {}
        self._touch = self.config.max_clusters is not None
        self._learned_bytes = 0
        self._generation: dict[int, list[int]] = {}
        self._hits = BoundedCache(self.config.cache_size, cache_bytes)
        self._misses = BoundedCache(self.config.miss_cache_size, cache_bytes)
        self.cache_bytes = cache_bytes

    @property
    def cache_bytes(self) -> int:
        """The byte bound of each cache (the training cache, and each of the two serving caches)."""
        return self._cache_bytes

    @cache_bytes.setter
    def cache_bytes(self, value: int) -> None:
        if value < 0:
            raise LogWardenError("parser cache_bytes must not be negative")
        self._cache_bytes = value
        for cache in (self._hits, self._misses):
            cache.max_bytes = value
            cache.clear()

    # -- training ---------------------------------------------------------------------------------

    def learn(self, content: str) -> int:
        """Add a line to the clusters (training time) and return its cluster id."""
        masked = self._mask(content)
        entry = self._learned.get(masked)
        if entry is not None and entry[2] == entry[1][0]:
            cluster = entry[0]
            cluster.size += 1
            if self._touch:
                self.drain.id_to_cluster[cluster.cluster_id]  # touch: same LRU order as plain drain3
            return cluster.cluster_id
        return self._learn_slow(masked)

    def _learn_slow(self, masked: str) -> int:
        drain = self.drain
        before = len(drain.id_to_cluster)
        cluster, change = drain.add_log_message(masked)
        cell = self._generation.setdefault(len(cluster.log_template_tokens), [0])
        if change != "none":
            if change == "cluster_created" and len(drain.id_to_cluster) == before:
                for other in self._generation.values():  # max_clusters evicted a cluster of any length
                    other[0] += 1
            else:
                cell[0] += 1
            self._hits.clear()
            self._misses.clear()
        cost = _cost(masked)
        if len(self._learned) >= self.config.cache_size or self._learned_bytes + cost > self._cache_bytes:
            self._learned.clear()
            self._learned_bytes = 0
        if self.config.cache_size and cost <= self._cache_bytes:
            self._learned[masked] = (cluster, cell, cell[0])
            self._learned_bytes += cost
        return cluster.cluster_id

    # -- serving ----------------------------------------------------------------------------------

    def match(self, content: str) -> int | None:
        """The cluster id of a line without changing any cluster; ``None`` for a never-seen template."""
        return self.match_masked(content)[0]

    def match_masked(self, content: str) -> tuple[int | None, str]:
        """``match(content)`` and the masked line (the template a never-seen line would have)."""
        masked = self._mask(content)
        cid = self._hits.get(masked)
        if cid is not None:
            return cid, masked
        misses = self._misses
        if masked in misses:
            misses.touch(masked)
            return None, masked
        cluster = self.drain.match(masked, full_search_strategy="fallback")
        if cluster is None:
            misses.put(masked, None)
            return None, masked
        self._hits.put(masked, cluster.cluster_id)
        return cluster.cluster_id, masked

    # -- templates --------------------------------------------------------------------------------

    def template(self, cluster_id: int) -> str:
        """The current template text of a cluster (``KeyError`` names an unknown id)."""
        cluster = self.drain.id_to_cluster.get(cluster_id)
        if cluster is None:
            raise KeyError(f"unknown template id {cluster_id}")
        return cluster.get_template().replace(DRAIN_PARAM, PARAM)

    def templates(self) -> dict[int, str]:
        """All templates by cluster id, in id order."""
        return {
            c.cluster_id: c.get_template().replace(DRAIN_PARAM, PARAM)
            for c in sorted(self.drain.clusters, key=_cluster_id)
        }

    @property
    def num_templates(self) -> int:
        return len(self.drain.id_to_cluster)

    # -- state ------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Plain-JSON state: config, mask fingerprint and clusters (id, template tokens, size)."""
        clusters = sorted(self.drain.clusters, key=_cluster_id)
        return {
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "mask_fingerprint": self.masker.fingerprint,
            "clusters_counter": self.drain.clusters_counter,
            "clusters": [{"id": c.cluster_id, "tokens": list(c.log_template_tokens), "size": c.size} for c in clusters],
        }

    @classmethod
    def from_state(cls, state: Any) -> TemplateParser:
        """Rebuild a parser (prefix tree included) from ``to_state()``; ``LogWardenError`` if malformed."""
        if not isinstance(state, dict):
            raise LogWardenError("parser state must be a JSON object")
        for key in ("version", "config", "mask_fingerprint", "clusters_counter", "clusters"):
            if key not in state:
                raise LogWardenError(f"parser state: missing key {key!r}")
        if state["version"] != STATE_VERSION:
            raise LogWardenError(
                f"parser state: unsupported version {state['version']!r} (this LogWarden reads version {STATE_VERSION})"
            )
        parser = cls(ParserConfig.from_dict(state["config"]))
        if state["mask_fingerprint"] != parser.masker.fingerprint:
            raise LogWardenError(
                "parser state: it was built with different masks than this LogWarden version applies (the "
                "masks changed to run in linear time); its template ids would not be reproducible: retrain "
                "the model with this version (logwarden train)"
            )
        clusters = _validated_clusters(state["clusters"])
        counter = state["clusters_counter"]
        if not _is_int(counter) or counter < max((c.cluster_id for c in clusters), default=0):
            raise LogWardenError("parser state: clusters_counter must be an integer >= every cluster id")
        drain = parser.drain
        if drain.max_clusters is not None and len(clusters) > drain.max_clusters:
            raise LogWardenError(f"parser state: {len(clusters)} clusters exceed max_clusters")
        for cluster in clusters:  # in id order, i.e. the order drain3 created them in
            drain.id_to_cluster[cluster.cluster_id] = cluster
            drain.add_seq_to_prefix_tree(drain.root_node, cluster)
        drain.clusters_counter = counter
        return parser


def _cluster_id(cluster: LogCluster) -> int:
    return cluster.cluster_id


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validated_clusters(raw: Any) -> list[LogCluster]:
    if not isinstance(raw, list):
        raise LogWardenError("parser state: 'clusters' must be a list")
    clusters: list[LogCluster] = []
    seen: set[int] = set()
    for i, item in enumerate(raw):
        where = f"parser state: clusters[{i}]"
        if not isinstance(item, dict) or set(item) != {"id", "tokens", "size"}:
            raise LogWardenError(f"{where} must be an object with exactly 'id', 'tokens' and 'size'")
        cid, tokens, size = item["id"], item["tokens"], item["size"]
        if not _is_int(cid) or cid < 1:
            raise LogWardenError(f"{where}: id must be a positive integer, got {cid!r}")
        if cid in seen:
            raise LogWardenError(f"{where}: duplicate cluster id {cid}")
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t and t.split() == [t] for t in tokens):
            raise LogWardenError(f"{where}: tokens must be a list of non-empty strings without whitespace")
        if not _is_int(size) or size < 1:
            raise LogWardenError(f"{where}: size must be a positive integer, got {size!r}")
        seen.add(cid)
        cluster = LogCluster(tokens, cid)
        cluster.size = size
        clusters.append(cluster)
    clusters.sort(key=_cluster_id)
    return clusters
