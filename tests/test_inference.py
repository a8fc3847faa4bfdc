"""Evaluation modes (rgbt_bench.inference): sliding window and multi-scale + flip against hand-computed values."""
import pytest
import torch
from torch import nn
from user_model_example import build

from rgbt_bench.errors import ConfigError
from rgbt_bench.inference import (
    MS_FLIP,
    MS_SCALES,
    SLIDE,
    WHOLE,
    Inference,
    InferenceMode,
    describe,
    parse_scales,
    parse_size,
    resolve_inference,
    scaled_size,
    windows,
)

SIZE = (24, 40)


class Column(nn.Module):
    """Logits: channel 0 is each pixel's column inside the image it is given (0, 1, ...), channel 1 zero.
    Not translation- nor flip-equivariant, so the windows and flips a mode uses show in its output."""

    def forward(self, rgb, thermal):
        b, _, h, w = rgb.shape
        col = torch.arange(w, dtype=torch.float32).expand(b, 1, h, w)
        return torch.cat([col, torch.zeros_like(col)], 1)


class PerPixel(nn.Module):
    """A 1x1 convolution of RGB and thermal: every pixel on its own, so flip-equivariant."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(4, 3, 1)

    def forward(self, rgb, thermal):
        return self.conv(torch.cat([rgb, thermal], 1))


def inputs(b=2, size=SIZE):
    gen = torch.Generator().manual_seed(0)
    return torch.rand((b, 3, *size), generator=gen), torch.rand((b, 1, *size), generator=gen)


def run(model, mode, size=SIZE):
    with torch.no_grad():
        return Inference(model, mode)(*inputs(size=size))


def test_window_grid_is_mmseg_slide_inference():
    # mmseg: grids = max(L - window + stride - 1, 0) // stride + 1; the last window shifted back to end at L
    assert windows(10, 4, 3) == [(0, 4), (3, 7), (6, 10)]
    assert windows(10, 4, 4) == [(0, 4), (4, 8), (6, 10)]
    assert windows(5, 4, 3) == [(0, 4), (1, 5)]
    assert windows(4, 4, 2) == [(0, 4)]


def test_slide_with_window_equal_to_the_image_is_whole():
    model = build(5).eval()
    mode = resolve_inference(SLIDE, window=SIZE, image_size=SIZE)
    whole = run(model, InferenceMode())
    assert torch.equal(run(model, mode), whole)


def test_slide_averages_the_logits_of_overlapping_windows():
    mode = resolve_inference(SLIDE, window=(24, 4), stride=(24, 3), image_size=(24, 10))
    out = run(Column(), mode, size=(24, 10))
    # windows [0,4) [3,7) [6,10): column 3 is column 3 of the first and 0 of the second window -> 1.5
    expected = torch.tensor([0, 1, 2, 1.5, 1, 2, 1.5, 1, 2, 3])
    assert torch.equal(out[0, 0, 5], expected) and torch.equal(out[1, 0, 0], expected)
    assert torch.equal(out[:, 1], torch.zeros(2, 24, 10))


def test_ms_flip_at_scale_one_without_flip_is_the_softmax_of_whole():
    model = build(5).eval()
    mode = resolve_inference(MS_FLIP, scales=[1.0], flip=False, image_size=SIZE)
    assert torch.allclose(run(model, mode), run(model, InferenceMode()).softmax(1), atol=1e-6)


def test_flip_of_a_flip_equivariant_model_changes_nothing():
    model = PerPixel().eval()
    mode = resolve_inference(MS_FLIP, scales=[1.0], flip=True, image_size=SIZE)
    assert torch.allclose(run(model, mode), run(model, InferenceMode()).softmax(1), atol=1e-6)


def test_flip_averages_softmax_of_the_image_and_its_mirror():
    w = 6
    out = run(Column(), resolve_inference(MS_FLIP, scales=[1.0], flip=True, image_size=(2, w)), size=(2, w))
    col = torch.arange(w, dtype=torch.float32)
    # flipped pass: the model sees column w-1-x at pixel x; probabilities (not logits) are averaged
    p = (torch.sigmoid(col) + torch.sigmoid(w - 1 - col)) / 2
    assert torch.allclose(out[0, 0, 1], p, atol=1e-6) and torch.allclose(out[0, 1, 1], 1 - p, atol=1e-6)


def test_multi_scale_resizes_logits_back_and_averages():
    model = PerPixel().eval()
    rgb, thermal = torch.full((1, 3, *SIZE), 0.3), torch.full((1, 1, *SIZE), 0.6)  # constant: any scale agrees
    mode = resolve_inference(MS_FLIP, scales=[0.5, 1.0, 1.5], flip=True, image_size=SIZE)
    with torch.no_grad():
        out = Inference(model, mode)(rgb, thermal)
        whole = model(rgb, thermal).softmax(1)
    assert out.shape == whole.shape and torch.allclose(out, whole, atol=1e-6)
    assert scaled_size((480, 640), 0.75) == (360, 480) and scaled_size((25, 25), 0.5) == (13, 13)  # mmcv rounding


def test_defaults_of_the_field():
    mf = resolve_inference(SLIDE, dataset="mfnet", image_size=(480, 640))
    assert (mf.window, mf.stride) == ((240, 320), (160, 213))  # CRM crop, 2/3 stride as mmseg's 512 -> 341
    pst = resolve_inference(SLIDE, dataset="pst900", image_size=(720, 1280))
    assert (pst.window, pst.stride) == ((224, 320), (149, 213))
    small = resolve_inference(SLIDE, dataset="synthetic", image_size=(24, 40))
    assert small.window == (24, 32)  # half the image, at least 32 px, never larger than the image
    ms = resolve_inference(MS_FLIP, dataset="mfnet", image_size=(480, 640))
    assert ms.scales == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75) == MS_SCALES and ms.flip
    assert resolve_inference(WHOLE, image_size=SIZE).as_dict() == {"mode": "whole"}
    assert mf.as_dict() == {"mode": "slide", "window": [240, 320], "stride": [160, 213]}
    assert describe(mf.as_dict()) == "slide 240x320 stride 160x213"
    assert describe(ms.as_dict()) == "ms-flip scales 0.5,0.75,1,1.25,1.5,1.75 + flip"


@pytest.mark.parametrize("call, message", [
    (lambda: resolve_inference("slid", image_size=SIZE),
     r"^unknown inference mode 'slid'; expected one of whole, slide, ms-flip. Did you mean 'slide'\?$"),
    (lambda: resolve_inference(SLIDE, window=(32, 40), image_size=SIZE),
     r"^--window 32x40 is larger than the 24x40 images; use a window of at most 24x40"),
    (lambda: resolve_inference(SLIDE, window=(8, 8), stride=(9, 4), image_size=SIZE),
     r"^--stride 9x4 is larger than the window 8x8"),
    (lambda: resolve_inference(WHOLE, scales=[1.0], image_size=SIZE), r"^--scales applies to --inference ms-flip"),
    (lambda: resolve_inference(MS_FLIP, window=(8, 8), image_size=SIZE), r"^--window applies to --inference slide"),
    (lambda: resolve_inference(MS_FLIP, scales=[0.01], image_size=SIZE), r"^--scales 0.01 shrinks the 24x40"),
    (lambda: parse_scales("0.5,x"), r"^invalid --scales '0.5,x'; expected distinct positive numbers"),
    (lambda: parse_scales("1,1"), r"^invalid --scales '1,1'"),
    (lambda: parse_scales("-1"), r"^invalid --scales '-1'"),
    (lambda: parse_size("24x", "--window"), r"^invalid --window '24x'; expected HxW"),
    (lambda: parse_size("0x8", "--stride"), r"^invalid --stride '0x8'; both sizes must be positive"),
])
def test_bad_settings_are_one_line_errors(call, message):
    with pytest.raises(ConfigError, match=message):
        call()
