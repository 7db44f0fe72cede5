"""Garbage-collector settings for serving.

A loaded model (torch, transformers, onnxruntime) leaves ~400k long-lived objects on the heap; every full
collection walks them all (~200 ms on the development machine) while holding the GIL, which showed up as a
p99 latency of ~300 ms at moderate load. ``freeze`` collects once and moves everything alive into the
permanent generation, so later collections only walk what serving allocates. ``refreeze`` after a model
reload lets the old model's objects be collected (one full collection: a single pause of that size).

Serving allocates many short-lived containers per event (requests, results, verdicts); with the
default first-generation threshold of 700 the collector ran several times per request. At 20,000 it
runs a few times per 10 s, 7-11 ms each, and sustained throughput in ``benchmarks/server.py`` rose
~10-15 % (three runs each: 40-47k against 36-39k events/s; p99 at 10k events/s unchanged, ~25 ms).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # allocations between first-generation collections (CPython's default: 700)
_state = {"frozen": False}


def freeze() -> None:
    """Collect, exempt every object alive now from future collections, and collect the young generation less
    often (``logwarden serve`` does this once it is serving; servers embedded in another program, such as the
    tests', leave their host's collector alone)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    _state["frozen"] = True


def refreeze() -> None:
    """After a reload, where ``freeze`` was used: unfreeze (the old model may now be garbage), collect, freeze."""
    if _state["frozen"]:
        gc.unfreeze()
        freeze()
