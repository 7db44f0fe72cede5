"""Next-key statistics: ranks, margins, expected keys, and windows over sequences longer than the context."""

import numpy as np

from logwarden.core.detect.next_key import score_sequences
from logwarden.core.model.vocab import BOS, EOS, UNK

V = 12  # 4 special tokens + keys 4..11


class SuccessorBackend:
    """A stand-in network whose prediction is "the next key follows the current one" (k → k+1)."""

    name = "successor"

    def __init__(self):
        self.calls = []

    def logits(self, ids, mask):
        self.calls.append(ids.shape)
        out = np.zeros((*ids.shape, V), dtype=np.float32)
        nxt = np.where(ids == BOS, 4, 4 + (ids - 4 + 1) % 8)
        np.put_along_axis(out, nxt[..., None], 10.0, axis=-1)
        out[..., EOS] = 5.0  # second likeliest everywhere
        return out


def cycle(n):
    return [BOS] + [4 + i % 8 for i in range(n)]


def test_expected_sequence_ranks_first_and_deviation_is_flagged():
    seq = cycle(6)
    seq[4] = 9  # expected 7
    (res,) = score_sequences(SuccessorBackend(), [seq], max_len=64, k=1)
    assert res.positions.tolist() == [1, 2, 3, 4, 5, 6]
    assert res.ranks.tolist() == [1, 1, 1, 3, 3, 1]  # 9 ranks below the successor and EOS
    assert (res.margin > 0).tolist() == [False, False, False, True, True, False]
    assert res.expected[3, :2].tolist() == [7, EOS]


def test_k_widens_the_accepted_set():
    seq = [*cycle(3), EOS]
    (k1,) = score_sequences(SuccessorBackend(), [seq], max_len=64, k=1)
    (k2,) = score_sequences(SuccessorBackend(), [seq], max_len=64, k=2)
    assert k1.ranks[-1] == 2 and k1.margin[-1] > 0 and k2.margin[-1] <= 0


def test_new_template_is_worst_rank_and_infinite_margin():
    seq = [BOS, 4, UNK, 6]
    (res,) = score_sequences(SuccessorBackend(), [seq], max_len=64, k=3)
    assert res.ranks[1] == V and np.isinf(res.margin[1])


def test_long_sequences_are_scored_in_windows_once_per_position():
    backend = SuccessorBackend()
    seqs = [cycle(50), cycle(5), cycle(17)]
    results = score_sequences(backend, seqs, max_len=8, k=1, max_batch_tokens=16)
    for seq, res in zip(seqs, results, strict=True):
        assert res.positions.tolist() == list(range(1, len(seq)))
        assert res.ranks.tolist() == [1] * (len(seq) - 1)
    assert all(shape[1] <= 8 for shape in backend.calls)
    assert all(shape[0] * shape[1] <= 16 or shape[0] == 1 for shape in backend.calls)


def test_starts_skip_already_scored_positions():
    (res,) = score_sequences(SuccessorBackend(), [cycle(10)], max_len=64, k=1, starts=[8])
    assert res.positions.tolist() == [8, 9, 10]
