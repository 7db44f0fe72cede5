"""TemplateParser: the cache is exact, match never learns, and the state survives a JSON round trip."""

import json
import random
import tracemalloc

import pytest
from drain3.drain import Drain

from logwarden.core.errors import LogWardenError
from logwarden.core.parsing.templates import DRAIN_PARAM, ParserConfig, TemplateParser

WORDS = ["alpha", "beta", "gamma", "delta", "open", "close", "read", "write", "node", "disk", "error", "ok"]


def generated_lines(n: int, seed: int = 7) -> list[str]:
    """Log-like lines from a few dozen random templates with variable numbers, ids and words."""
    rng = random.Random(seed)
    templates = []
    for _ in range(40):
        length = rng.randint(2, 9)
        templates.append([rng.choice([*WORDS, "{num}", "{ip}", "{word}", "{hex}"]) for _ in range(length)])
    lines = []
    for _ in range(n):
        parts = []
        for token in rng.choice(templates):
            if token == "{num}":
                parts.append(str(rng.randint(0, 10_000)))
            elif token == "{ip}":
                parts.append(f"10.0.{rng.randint(0, 255)}.{rng.randint(0, 255)}:{rng.randint(1, 65535)}")
            elif token == "{word}":
                parts.append(rng.choice(WORDS))
            elif token == "{hex}":
                parts.append(f"0x{rng.getrandbits(32):x}")
            else:
                parts.append(token)
        lines.append(" ".join(parts))
    return lines


def plain_drain_ids(parser: TemplateParser, lines: list[str], config: ParserConfig) -> list[int]:
    drain = Drain(
        depth=config.depth,
        sim_th=config.sim_th,
        max_children=config.max_children,
        max_clusters=config.max_clusters,
        param_str=DRAIN_PARAM,
    )
    return [drain.add_log_message(parser.masker.mask(line))[0].cluster_id for line in lines]


@pytest.mark.parametrize(
    "config",
    [ParserConfig(), ParserConfig(sim_th=0.6, depth=5), ParserConfig(max_children=3), ParserConfig(max_clusters=15)],
)
def test_cached_learn_returns_plain_drain_ids(config: ParserConfig) -> None:
    lines = generated_lines(4000)
    parser = TemplateParser(config)
    ours = [parser.learn(line) for line in lines]
    assert ours == plain_drain_ids(parser, lines, config)


def test_a_naive_cache_would_go_stale() -> None:
    """Cluster ids never change, yet drain3 can move a masked line to a newer, better cluster."""
    lines = ["a b c d", "a x y d", "a b c z", "a b c d"]
    config = ParserConfig(sim_th=0.4)
    plain = plain_drain_ids(TemplateParser(config), lines, config)
    assert plain[0] != plain[3]  # drain3 itself answers differently for the same line later on
    parser = TemplateParser(config)
    assert [parser.learn(line) for line in lines] == plain


def test_learn_keeps_cluster_sizes_like_plain_drain() -> None:
    lines = generated_lines(1000)
    config = ParserConfig()
    parser = TemplateParser(config)
    for line in lines:
        parser.learn(line)
    drain = Drain(depth=config.depth, sim_th=config.sim_th, param_str=DRAIN_PARAM)
    for line in lines:
        drain.add_log_message(parser.masker.mask(line))
    assert {c.cluster_id: c.size for c in parser.drain.clusters} == {c.cluster_id: c.size for c in drain.clusters}


def test_match_never_creates_or_changes_clusters() -> None:
    parser = TemplateParser()
    for line in generated_lines(500):
        parser.learn(line)
    before = json.dumps(parser.to_state(), sort_keys=True)
    for line in [*generated_lines(500, seed=99), "completely new words here", ""]:
        parser.match(line)
    assert json.dumps(parser.to_state(), sort_keys=True) == before


def test_new_template_is_none_and_known_lines_match() -> None:
    parser = TemplateParser()
    learned = {parser.learn(f"session {i} opened for user bob") for i in range(5)}
    assert parser.match("session 77 opened for user bob") in learned
    assert parser.match("disk quota exceeded on volume 3") is None
    assert parser.match("disk quota exceeded on volume 3") is None  # cached miss, still None
    assert parser.num_templates == 1


def test_learning_invalidates_serving_caches() -> None:
    parser = TemplateParser()
    parser.learn("disk full on 1")
    assert parser.match("kernel panic now") is None
    cid = parser.learn("kernel panic now")
    assert parser.match("kernel panic now") == cid


def test_serving_caches_are_bounded() -> None:
    parser = TemplateParser(ParserConfig(cache_size=10, miss_cache_size=5))
    parser.learn("value is 1")
    for i in range(100):
        parser.match(f"value is {i}")
        parser.match(f"unknown thing {'x' * i}")
    assert len(parser._hits) <= 10 and len(parser._misses) <= 5


def _letters(i: int) -> str:
    return "".join(chr(97 + (i // 26**k) % 26) for k in range(4))  # distinct words: masks leave letters alone


def test_caches_are_bounded_in_bytes() -> None:
    """Large distinct lines (an attacker's choice) fill no cache past its byte bound, serving or training."""
    bound = 1 << 20
    parser = TemplateParser(cache_bytes=bound)
    parser.learn("value is 1")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(300):  # 300 × 60 KB: 18 MB of distinct masked lines
            line = f"{_letters(i)} {'w' * 60_000} {_letters(i)}"
            assert parser.match(line) is None
            assert parser.match(f"value is {i} {_letters(i) * 15_000}") is None
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert parser._misses.nbytes <= bound and grown < 3 * bound
    trainer = TemplateParser(cache_bytes=bound)
    for i in range(100):
        trainer.learn(f"{_letters(i)} {'w' * 60_000}")
    assert trainer._learned_bytes <= bound
    parser.cache_bytes = 0  # a setting the server passes on: nothing is cached any more
    parser.match("value is 1")
    assert len(parser._hits) == 0 and parser.match("value is 2") == parser.learn("value is 3")


def test_templates_show_wildcards_as_stars() -> None:
    parser = TemplateParser()
    parser.learn("user alice logged in from 10.0.0.1")
    cid = parser.learn("user bob logged in from 10.0.0.2")
    assert parser.template(cid) == "user <*> logged in from <*>"
    assert parser.templates() == {cid: "user <*> logged in from <*>"}
    with pytest.raises(KeyError):
        parser.template(999)


@pytest.mark.parametrize("config", [ParserConfig(), ParserConfig(max_children=3, depth=5)])
def test_state_json_round_trip_matches_the_same_ids(config: ParserConfig) -> None:
    parser = TemplateParser(config)
    for line in generated_lines(3000):
        parser.learn(line)
    restored = TemplateParser.from_state(json.loads(json.dumps(parser.to_state())))
    probe = generated_lines(3000, seed=1) + generated_lines(500, seed=7)
    assert [restored.match(x) for x in probe] == [parser.match(x) for x in probe]
    assert restored.templates() == parser.templates()
    assert restored.to_state() == parser.to_state()
    # learning goes on from the same counter
    assert restored.learn("brand new template words") == parser.learn("brand new template words")


def test_state_is_small_plain_json() -> None:
    parser = TemplateParser()
    for line in generated_lines(2000):
        parser.learn(line)
    state = parser.to_state()
    assert set(state) == {"version", "config", "mask_fingerprint", "clusters_counter", "clusters"}
    assert len(state["clusters"]) == parser.num_templates


def _state() -> dict:
    parser = TemplateParser()
    parser.learn("a 1 b")
    parser.learn("c d 2")
    return json.loads(json.dumps(parser.to_state()))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.pop("clusters"), "missing key 'clusters'"),
        (lambda s: s.update(version=99), "unsupported version"),
        (lambda s: s.update(clusters="x"), "'clusters' must be a list"),
        (lambda s: s["clusters"][0].update(id=-1), r"clusters\[0\]: id must be a positive integer"),
        (lambda s: s["clusters"][1].update(id=1), "duplicate cluster id 1"),
        (lambda s: s["clusters"][0].update(tokens=["a b"]), "tokens must be a list"),
        (lambda s: s["clusters"][0].update(size=0), "size must be a positive integer"),
        (lambda s: s["clusters"][0].pop("size"), "exactly 'id', 'tokens' and 'size'"),
        (lambda s: s.update(clusters_counter=1), "clusters_counter"),
        (lambda s: s["config"].update(depth="4"), "config.depth has the wrong type"),
        (lambda s: s["config"].update(depth=2), "depth must be at least 3"),
        (lambda s: s["config"].update(colour=1), "unknown config key"),
        (lambda s: s.update(mask_fingerprint="0"), "different masks.*retrain"),
    ],
)
def test_malformed_state_is_a_clear_error(mutate, message: str) -> None:
    state = _state()
    mutate(state)
    with pytest.raises(LogWardenError, match=message):
        TemplateParser.from_state(state)


def test_state_must_be_an_object() -> None:
    with pytest.raises(LogWardenError, match="JSON object"):
        TemplateParser.from_state([1, 2])
