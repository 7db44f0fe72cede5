"""Template ids for log lines: one masking pass, an exact-match cache, and drain3's ``Drain`` behind it.

``learn`` (training) returns exactly the cluster ids that ``Drain.add_log_message`` returns for the same
masked lines; the cache is only a speed-up. A cached ``masked line -> cluster`` answer can go stale
even though cluster ids never change: a later line can create a cluster (or generalise a template)
that drain3 would now prefer for that masked line. Drain only ever compares a line with clusters of
the same token count, and every change happens inside one token-count subtree, so each cache entry
records the generation of its token count and is trusted only while no cluster of that token count
was created or changed since.

``match`` (serving) never changes the clusters: a template never seen in training gives ``None``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

from drain3.drain import Drain, LogCluster

from logwarden.core.errors import LogWardenError
from logwarden.core.parsing.masking import PARAM, Masker, MaskingConfig

STATE_VERSION = 1
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


class TemplateParser:
    """Masks lines and maps them to stable drain3 cluster ids (the log keys)."""

    def __init__(self, config: ParserConfig | None = None) -> None:
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
        self._generation: dict[int, list[int]] = {}
        self._hits: OrderedDict[str, int] = OrderedDict()
        self._misses: OrderedDict[str, None] = OrderedDict()

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
        if len(self._learned) >= self.config.cache_size:
            self._learned.clear()
        if self.config.cache_size:
            self._learned[masked] = (cluster, cell, cell[0])
        return cluster.cluster_id

    # -- serving ----------------------------------------------------------------------------------

    def match(self, content: str) -> int | None:
        """The cluster id of a line without changing any cluster; ``None`` for a never-seen template."""
        masked = self._mask(content)
        hits = self._hits
        cid = hits.get(masked)
        if cid is not None:
            hits.move_to_end(masked)
            return cid
        misses = self._misses
        if masked in misses:
            misses.move_to_end(masked)
            return None
        cluster = self.drain.match(masked, full_search_strategy="fallback")
        if cluster is None:
            _put(misses, masked, None, self.config.miss_cache_size)
            return None
        _put(hits, masked, cluster.cluster_id, self.config.cache_size)
        return cluster.cluster_id

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
                "parser state: it was built with different masks than this LogWarden "
                "version applies; its template ids would not be reproducible"
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


def _put(cache: OrderedDict, key: str, value: Any, size: int) -> None:
    if size <= 0:
        return
    cache[key] = value
    if len(cache) > size:
        cache.popitem(last=False)


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
