"""Combined rewards: per-batch normalisation and weights."""

import pytest
import torch

from ttsvar.errors import TTSVarError
from ttsvar.scoring import CombinedReward, combine_rewards, normalize_scores
from ttsvar.scoring.base import RewardModel


class Fixed:
    def __init__(self, name, values, input_size=224):
        self.name, self.values, self.input_size = name, torch.tensor(values), input_size

    def score(self, images, prompts):
        return self.values[: images.shape[0]].clone()


def test_softmax_average_as_in_the_paper():
    hps = Fixed("hpsv2", [0.30, 0.31, 0.28], 224)
    ir = Fixed("imagereward", [1.2, -0.3, 0.4], 224)
    c = combine_rewards([hps, ir])
    assert isinstance(c, RewardModel) and c.name == "hpsv2+imagereward" and c.input_size == 224
    x = torch.zeros(3, 3, 8, 8)
    expected = (torch.softmax(hps.values.double(), 0) + torch.softmax(ir.values.double(), 0)) / 2
    torch.testing.assert_close(c.score(x, ["p"] * 3), expected.float())


def test_weights_and_other_normalisations():
    a, b = Fixed("a", [1.0, 2.0, 3.0]), Fixed("b", [10.0, 0.0, 5.0], 448)
    x = torch.zeros(3, 3, 8, 8)
    c = CombinedReward([a, b], weights=[3, 1], normalization="none")
    torch.testing.assert_close(c.score(x, ["p"] * 3), torch.tensor([3.25, 1.5, 3.5]))
    assert c.input_size == 448
    z = CombinedReward([a, b], weights=[1, 0], normalization="zscore").score(x, ["p"] * 3)
    torch.testing.assert_close(z, torch.tensor([-1.0, 0.0, 1.0]) / torch.tensor(2 / 3).sqrt())


def test_normalize_edge_cases():
    torch.testing.assert_close(normalize_scores(torch.tensor([2.0]), "softmax"), torch.tensor([1.0], dtype=torch.float64))
    assert (normalize_scores(torch.tensor([2.0]), "zscore") == 0).all()
    assert (normalize_scores(torch.tensor([2.0, 2.0]), "zscore") == 0).all()
    # softmax is shift invariant, so huge rewards don't overflow
    torch.testing.assert_close(normalize_scores(torch.tensor([1000.0, 1001.0]), "softmax"),
                               normalize_scores(torch.tensor([0.0, 1.0]), "softmax"))


def test_errors():
    a = Fixed("a", [1.0])
    with pytest.raises(TTSVarError):
        CombinedReward([])
    with pytest.raises(TTSVarError, match="2 weights for 1"):
        CombinedReward([a], [1, 2])
    with pytest.raises(TTSVarError, match="non-negative"):
        CombinedReward([a], [-1])
    with pytest.raises(TTSVarError, match="normalisation"):
        CombinedReward([a], normalization="minmax")
