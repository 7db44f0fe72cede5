"""Garbage-collector settings for serving.

A loaded model (torch, transformers, onnxruntime) leaves ~400k long-lived objects on the heap; every full
collection walks them all (~200 ms on the development machine) while holding the GIL, which showed up as a
p99 latency of ~300 ms at moderate load. ``freeze`` collects once and moves everything alive into the
permanent generation, so later collections only walk what serving allocates. ``refreeze`` after a model
reload lets the old model's objects be collected (one full collection: a single pause of that size).
"""

from __future__ import annotations

import gc

_state = {"frozen": False}


def freeze() -> None:
    """Collect, then exempt every object alive now from future collections (``logwarden serve`` does this once
    it is serving; servers embedded in another program, such as the tests', leave their host's heap alone)."""
    gc.collect()
    gc.freeze()
    _state["frozen"] = True


def refreeze() -> None:
    """After a reload, where ``freeze`` was used: unfreeze (the old model may now be garbage), collect, freeze."""
    if _state["frozen"]:
        gc.unfreeze()
        freeze()
