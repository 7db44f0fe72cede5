"""Token vocabulary: template ids (log keys) and the model's special tokens."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from logwarden.core.errors import LogWardenError

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<new>")


class Vocab:
    """Maps log keys (template ids as strings) to token ids; unseen keys map to ``UNK``."""

    def __init__(self, keys: Sequence[str]) -> None:
        if len(set(keys)) != len(keys):
            raise LogWardenError("vocabulary has duplicate keys")
        self.keys = list(keys)
        self._index = {k: i + len(SPECIAL_TOKENS) for i, k in enumerate(self.keys)}

    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]], min_sessions: int = 1) -> Vocab:
        """Keys of the (normal) training sequences, in first-seen order.

        Keys found in fewer than ``min_sessions`` sessions are left out: too rare to model, they are
        treated like templates never seen in training.
        """
        counts: dict[str, int] = {}  # first-seen order: no set iteration, so no hash-seed dependence
        for seq in sequences:
            for key in dict.fromkeys(seq):
                counts[key] = counts.get(key, 0) + 1
        return cls([k for k, n in counts.items() if n >= min_sessions])

    def __len__(self) -> int:
        return len(self.keys) + len(SPECIAL_TOKENS)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def token(self, key: str | None) -> int:
        return UNK if key is None else self._index.get(key, UNK)

    def encode(self, keys: Sequence[str | None]) -> list[int]:
        return [self.token(k) for k in keys]

    def key(self, token: int) -> str | None:
        """The log key of a token id, or None for special tokens."""
        i = token - len(SPECIAL_TOKENS)
        return self.keys[i] if 0 <= i < len(self.keys) else None
