"""Pillow's 8-bit resize redone in tensors: equal to Pillow, pixel for pixel."""

import numpy as np
import pytest
import torch
from PIL import Image

from ttsvar.errors import TTSVarError
from ttsvar.scoring.pil_resize import pil_resize, to_uint8

RESAMPLE = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def _pillow(images: torch.Tensor, size: tuple[int, int], filter: str) -> torch.Tensor:
    """Pillow, horizontal pass first (every Pillow before 13; Pillow 13 may start with the vertical
    pass when the height shrinks more, python-pillow/Pillow#9549, so the passes are run one by one)."""
    h, w = size
    out = []
    for img in images:
        im = Image.fromarray(img.permute(1, 2, 0).numpy())
        if w != im.size[0]:
            im = im.resize((w, im.size[1]), RESAMPLE[filter])
        if h != im.size[1]:
            im = im.resize((w, h), RESAMPLE[filter])
        out.append(torch.from_numpy(np.array(im)).permute(2, 0, 1))
    return torch.stack(out)


@pytest.mark.parametrize("filter", ["bilinear", "bicubic"])
@pytest.mark.parametrize("src,dst", [((256, 256), (56, 56)), ((61, 47), (28, 28)), ((47, 61), (100, 30)),
                                     ((37, 13), (5, 40)), ((32, 32), (31, 33)), ((7, 300), (3, 2))])
def test_equals_pillow(filter, src, dst):
    g = torch.Generator().manual_seed(sum(src) + sum(dst))
    # noise: the bicubic overshoot is clipped in the intermediate pass, which a float filter misses
    x = torch.randint(0, 256, (2, 3, *src), generator=g, dtype=torch.uint8)
    assert torch.equal(pil_resize(x, dst, filter), _pillow(x, dst, filter))


def test_square_images_equal_a_single_pillow_call():
    """Square → square (the DINOv2 input of square previews): the plain Image.resize, any Pillow."""
    x = torch.randint(0, 256, (1, 3, 128, 128), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    ref = np.array(Image.fromarray(x[0].permute(1, 2, 0).numpy()).resize((28, 28), Image.BILINEAR))
    assert torch.equal(pil_resize(x, (28, 28))[0], torch.from_numpy(ref).permute(2, 0, 1))


def test_same_size_is_a_copy_and_to_uint8_inverts_div_255():
    x = torch.randint(0, 256, (1, 3, 9, 7), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    assert torch.equal(pil_resize(x, (9, 7)), x)
    assert torch.equal(to_uint8(x.float() / 255), x)


def test_bad_input():
    with pytest.raises(TTSVarError, match="uint8"):
        pil_resize(torch.rand(1, 3, 8, 8), (4, 4))
    with pytest.raises(TTSVarError, match="filter"):
        pil_resize(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), (4, 4), "lanczos")
