"""Top-p on a bit's two classes, against a plain re-statement of the official rule.

The official sampler (Infinity / TTS-VAR ``sample_with_top_k_top_p_also_inplace_modifying_logits_``):
sort the logits ascending, remove the entries whose cumulative softmax is ≤ 1 − top_p, never
remove the last (the most likely class), then sample from what is left.
"""

import math

import pytest
import torch

from ttsvar.infinity.generate import sample_bits


def official_rule(p1: float, top_p: float) -> float:
    """P(bit = 1) after the official top-p, written out for two classes."""
    probs = {0: 1.0 - p1, 1: p1}
    ascending = sorted(probs, key=lambda c: probs[c])  # stable: at a tie class 0 comes first
    kept, cumulative = [], 0.0
    for i, c in enumerate(ascending):
        cumulative += probs[c]
        if cumulative > 1.0 - top_p or i == len(ascending) - 1:
            kept.append(c)
    return probs[1] / sum(probs[c] for c in kept) if 1 in kept else 0.0


def _logits(p1: float) -> torch.Tensor:
    return torch.tensor([0.0, math.log(p1 / (1.0 - p1))])


@pytest.mark.parametrize("top_p,p1", [(0.4, 0.55), (0.2, 0.55), (0.2, 0.7)])
def test_small_top_p_keeps_the_majority_bit(top_p, p1):
    """The cases the audit found: the old code zeroed p1 first and then drew bit 0 every time."""
    assert official_rule(p1, top_p) == 1.0
    logits = _logits(p1).repeat(64).view(1, 64, 2)  # 64 bits of one candidate
    assert sample_bits(logits, top_p, [7]).eq(1).all()


@pytest.mark.parametrize("top_p", [0.0, 0.05, 0.2, 0.4, 0.5, 0.6, 0.9, 0.97, 1.0])
@pytest.mark.parametrize("p1", [0.01, 0.04, 0.15, 0.3, 0.45, 0.55, 0.7, 0.85, 0.96, 0.99])
def test_matches_the_official_rule(top_p, p1):
    """Grid kept off the exact boundary p = 1 − top_p, where float32 vs float64 rounding decides."""
    from ttsvar.infinity.generate import top_p_bit_probability

    expected = p1 if top_p == 0 else official_rule(p1, top_p)  # top_p = 0: the official code skips top-p
    # the probabilities go through exp/log and a float32 softmax: equal to float32 precision
    assert top_p_bit_probability(_logits(p1), top_p).item() == pytest.approx(expected, abs=1e-6)


def test_sampled_bits_follow_the_probability():
    """Bits where top-p decides are fixed; elsewhere they are drawn with P(1) = p1."""
    p1 = torch.tensor([0.02, 0.98, 0.3, 0.7])
    logits = torch.stack([torch.zeros(4), (p1 / (1 - p1)).log()], -1).repeat(2000, 1).view(1, 8000, 2)
    bits = sample_bits(logits, 0.9, [3]).view(2000, 4).float()
    assert bits[:, 0].eq(0).all() and bits[:, 1].eq(1).all()
    # 2000 draws each: a binomial standard deviation of about 0.01
    assert bits[:, 2].mean().item() == pytest.approx(0.3, abs=0.05)
    assert bits[:, 3].mean().item() == pytest.approx(0.7, abs=0.05)
