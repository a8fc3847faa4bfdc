"""Mask2Former head: shapes, deformable attention vs a naive reference, matching, loss, inference."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from rgbt_bench.errors import ConfigError, DataError
from rgbt_bench.models.mask2former import (
    HungarianMatcher,
    Mask2FormerHead,
    Mask2FormerLoss,
    MSDeformAttn,
    hungarian_assignment,
    ms_deform_attn_sample,
    semantic_inference,
    semantic_targets,
)
from rgbt_bench.models.mask2former.pixel_decoder import encoder_reference_points
from rgbt_bench.models.mask2former.position import sine_position_embedding

CHANNELS = [8, 12, 16, 24]


def tiny_head(num_classes=3, dec_layers=3):
    return Mask2FormerHead(CHANNELS, num_classes, hidden_dim=32, num_queries=8, nheads=2, dim_feedforward=64,
                           dec_layers=dec_layers, enc_layers=1, mask_dim=32, enc_dim_feedforward=64)


def tiny_features(batch=2, seed=0):
    """Strides 4, 8, 16, 32 of a 32x40 image: 8x10, 4x5, 2x3, 1x2 (ceil, as a padded backbone gives)."""
    g = torch.Generator().manual_seed(seed)
    sizes = [(8, 10), (4, 5), (2, 3), (1, 2)]
    return [torch.randn(batch, c, h, w, generator=g) for c, (h, w) in zip(CHANNELS, sizes)]


def block_label(batch=1):
    """32x40 label: classes 0, 1, 2 in blocks, the top 4 rows ignored (255)."""
    label = torch.zeros(batch, 32, 40, dtype=torch.int64)
    label[:, :, 14:] = 1
    label[:, 20:, :] = 2
    label[:, :4] = 255
    return label


def test_head_output_shapes_and_aux_count():
    torch.manual_seed(0)
    out = tiny_head(num_classes=5, dec_layers=3)(tiny_features(batch=2))
    assert out["pred_logits"].shape == (2, 8, 6)
    assert out["pred_masks"].shape == (2, 8, 8, 10)
    assert len(out["aux_outputs"]) == 3  # initial queries + the first dec_layers - 1 layers
    for aux in out["aux_outputs"]:
        assert aux["pred_logits"].shape == (2, 8, 6) and aux["pred_masks"].shape == (2, 8, 8, 10)
    assert torch.isfinite(out["pred_masks"]).all() and torch.isfinite(out["pred_logits"]).all()
    # each prediction comes from a different stage, so the aux predictions are not copies of the final one
    assert not torch.allclose(out["aux_outputs"][-1]["pred_masks"], out["pred_masks"])


def test_head_is_per_image():
    """Batch elements do not interact: image 1's output is the same alone or in a batch."""
    torch.manual_seed(0)
    head = tiny_head().eval()
    feats = tiny_features(batch=3)
    batched = head(feats)
    alone = head([f[1:2] for f in feats])
    assert torch.allclose(batched["pred_masks"][1:2], alone["pred_masks"], atol=1e-5)
    assert torch.allclose(batched["pred_logits"][1:2], alone["pred_logits"], atol=1e-5)


def naive_ms_deform_attn(value, shapes, locations, weights):
    """Loop over batch, heads, levels and points with explicit bilinear interpolation (zero padding,
    pixel centres at (i + 0.5) / size)."""
    n, _, m, d = value.shape
    lq = locations.shape[1]
    out = torch.zeros(n, lq, m, d, dtype=value.dtype)
    start = 0
    for lvl, (h, w) in enumerate(shapes):
        for b in range(n):
            for head in range(m):
                grid = value[b, start:start + h * w, head].reshape(h, w, d)
                for p in range(locations.shape[4]):
                    x = locations[b, :, head, lvl, p, 0] * w - 0.5
                    y = locations[b, :, head, lvl, p, 1] * h - 0.5
                    x0, y0 = torch.floor(x), torch.floor(y)
                    sample = torch.zeros(lq, d, dtype=value.dtype)
                    for dx, dy in itertools.product((0, 1), (0, 1)):
                        xi, yi = x0 + dx, y0 + dy
                        corner_w = (1 - (x - xi).abs()) * (1 - (y - yi).abs())
                        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
                        vals = grid[yi.clamp(0, h - 1).long(), xi.clamp(0, w - 1).long()]
                        sample += (corner_w * inside)[:, None] * vals
                    out[b, :, head] += weights[b, :, head, lvl, p, None] * sample
        start += h * w
    return out.reshape(n, lq, m * d)


def test_ms_deform_attn_matches_naive_reference():
    g = torch.Generator().manual_seed(3)
    shapes = [(3, 4), (5, 2), (2, 7)]
    n, m, d, lq, p = 2, 3, 4, 6, 2
    value = torch.randn(n, sum(h * w for h, w in shapes), m, d, generator=g, dtype=torch.float64)
    # locations partly outside [0, 1] exercise the zero padding
    locations = torch.rand(n, lq, m, len(shapes), p, 2, generator=g, dtype=torch.float64) * 1.4 - 0.2
    weights = torch.rand(n, lq, m, len(shapes), p, generator=g, dtype=torch.float64)
    fast = ms_deform_attn_sample(value, shapes, locations, weights)
    assert fast.shape == (n, lq, m * d)
    assert torch.allclose(fast, naive_ms_deform_attn(value, shapes, locations, weights), atol=1e-10)


def test_ms_deform_attn_offsets_are_in_pixels_of_each_level():
    """One head, one point, all attention on level 0 with an offset of +1 pixel in x: each pixel-centre
    query reads its right neighbour's value (zero past the right border)."""
    shapes = [(3, 4), (2, 2)]
    attn = MSDeformAttn(d_model=4, n_levels=2, n_heads=1, n_points=1)
    with torch.no_grad():
        for proj in (attn.value_proj, attn.output_proj):
            proj.weight.copy_(torch.eye(4))
            proj.bias.zero_()
        attn.sampling_offsets.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))  # (level, point, xy)
        attn.attention_weights.bias.copy_(torch.tensor([0.0, -1e4]))
    values = torch.randn(1, 16, 4, generator=torch.Generator().manual_seed(0))
    refs = encoder_reference_points(shapes, n_levels=2, device=torch.device("cpu"))[:, :12]
    out = attn(values[:, :12], refs, values, shapes).reshape(3, 4, 4)
    grid = values[0, :12].reshape(3, 4, 4)
    assert torch.allclose(out[:, :3], grid[:, 1:], atol=1e-6)
    assert torch.allclose(out[:, 3], torch.zeros(3, 4), atol=1e-6)


def test_sine_position_embedding_formula():
    pos = sine_position_embedding(torch.zeros(1, 3, 4, 5), num_pos_feats=6)
    assert pos.shape == (1, 12, 4, 5)
    i, j = 2, 3
    y, x = (i + 1) / (4 + 1e-6) * 2 * math.pi, (j + 1) / (5 + 1e-6) * 2 * math.pi
    freq = [10000 ** (2 * (k // 2) / 6) for k in range(6)]
    expect_y = [math.sin(y / f) if k % 2 == 0 else math.cos(y / f) for k, f in enumerate(freq)]
    expect_x = [math.sin(x / f) if k % 2 == 0 else math.cos(x / f) for k, f in enumerate(freq)]
    assert torch.allclose(pos[0, :, i, j], torch.tensor(expect_y + expect_x), atol=1e-5)


def brute_force_min(cost):
    q, k = cost.shape
    return min(sum(cost[r, c].item() for c, r in enumerate(rows)) for rows in itertools.permutations(range(q), k))


def test_hungarian_assignment_is_optimal():
    g = torch.Generator().manual_seed(7)
    for _ in range(5):
        cost = torch.rand(6, 3, generator=g)
        rows, cols = hungarian_assignment(cost)
        assert len(set(rows.tolist())) == 3 and sorted(cols.tolist()) == [0, 1, 2]
        assert cost[rows, cols].sum().item() == pytest.approx(brute_force_min(cost), abs=1e-6)


def test_matcher_matches_optimally_on_point_sampled_costs():
    g = torch.Generator().manual_seed(0)
    logits, masks = torch.randn(1, 5, 4, generator=g), torch.randn(1, 5, 8, 10, generator=g)
    targets = semantic_targets(block_label(), num_classes=3, ignore_index=255)
    matcher = HungarianMatcher(num_points=64)
    (cost,) = matcher.cost_matrices(logits, masks, targets, generator=torch.Generator().manual_seed(5))
    ((rows, cols),) = matcher(logits, masks, targets, generator=torch.Generator().manual_seed(5))
    assert cost.shape == (5, 3)
    assert cost[rows, cols].sum().item() == pytest.approx(brute_force_min(cost), abs=1e-5)
    # query q predicts class order[q] with that class's exact mask: it must win that target
    order = [2, 0, 1]
    logits = torch.full((1, 3, 4), -10.0)
    logits[0, [0, 1, 2], order] = 10.0
    small_masks = F.interpolate(targets[0].masks[None], size=(8, 10))  # [1, 3, 8, 10] in {0, 1}
    mask_logits = 40.0 * small_masks[:, order] - 20.0
    ((rows, cols),) = matcher(logits, mask_logits, targets, generator=torch.Generator().manual_seed(1))
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 2, 1: 0, 2: 1}


def test_semantic_targets_exclude_ignore():
    (t,) = semantic_targets(block_label(), num_classes=3, ignore_index=255)
    assert t.labels.tolist() == [0, 1, 2]
    assert t.masks.shape == (3, 32, 40)
    assert t.valid[:4].sum() == 0 and t.valid[4:].min() == 1
    assert t.masks[:, :4].sum() == 0
    assert t.masks[1, 10, 20] == 1 and t.masks[0, 10, 5] == 1 and t.masks[2, 25, 5] == 1
    assert (t.masks.sum(0) == t.valid).all()
    with pytest.raises(DataError, match=r"class ids \[7\]"):
        semantic_targets(torch.full((1, 4, 4), 7), num_classes=3, ignore_index=255)


def random_outputs(seed, q=6, c=3, aux=2):
    g = torch.Generator().manual_seed(seed)
    make = lambda: {"pred_logits": torch.randn(1, q, c + 1, generator=g),  # noqa: E731
                    "pred_masks": torch.randn(1, q, 8, 10, generator=g)}
    out = make()
    out["aux_outputs"] = [make() for _ in range(aux)]
    return out


def loss_value(criterion, outputs, label, ignore_index, seed=11):
    return criterion(outputs, label, ignore_index, generator=torch.Generator().manual_seed(seed))


def test_loss_terms_and_reproducibility():
    criterion = Mask2FormerLoss(3, num_points=128)
    outputs, label = random_outputs(0), block_label()
    a, b = loss_value(criterion, outputs, label, 255), loss_value(criterion, outputs, label, 255)
    assert set(a) == {"loss", "loss_ce", "loss_mask", "loss_dice"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in a.values())
    assert all(torch.equal(a[k], b[k]) for k in a)
    final = a["loss_ce"] + a["loss_mask"] + a["loss_dice"]
    assert a["loss"] > final + 1.0  # the two aux predictions add their own terms
    no_aux = {k: v for k, v in outputs.items() if k != "aux_outputs"}
    assert torch.allclose(loss_value(criterion, no_aux, label, 255)["loss"], final)


def test_ignore_pixels_do_not_affect_loss_in_valid_mode():
    """ignore_mode="valid": predictions under ignored pixels and the ignore value itself do not change the
    loss; valid ones do."""
    criterion = Mask2FormerLoss(3, num_points=128, ignore_mode="valid")
    label = torch.zeros(1, 32, 40, dtype=torch.int64)
    label[:, :, 30:] = 1
    label[:, 16:, 30:] = 2
    label[:, :, :20] = 255  # left half ignored: mask columns 0..4 of 10 lie under it
    outputs = random_outputs(1)
    base = loss_value(criterion, outputs, label, 255)

    perturbed = random_outputs(1)
    for pred in [perturbed] + perturbed["aux_outputs"]:
        pred["pred_masks"][..., :3] += 50.0 * torch.randn_like(pred["pred_masks"][..., :3])
    other = loss_value(criterion, perturbed, label, 255)
    assert all(torch.equal(base[k], other[k]) for k in base)

    relabelled = label.masked_fill(label == 255, 99)
    renamed = loss_value(criterion, outputs, relabelled, 99)
    assert all(torch.equal(base[k], renamed[k]) for k in base)

    changed = random_outputs(1)
    changed["pred_masks"][..., 7:] += 5.0
    assert not torch.allclose(loss_value(criterion, changed, label, 255)["loss_mask"], base["loss_mask"])


def test_loss_decreases_when_optimising_a_tiny_head():
    torch.manual_seed(0)
    head = tiny_head()
    criterion = Mask2FormerLoss(3, num_points=256)
    feats, label = tiny_features(batch=1), block_label()

    def evaluate():
        with torch.no_grad():
            return loss_value(criterion, head(feats), label, 255)["loss"].item()

    before = evaluate()
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3)
    for step in range(30):
        loss = loss_value(criterion, head(feats), label, 255, seed=step)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = evaluate()
    assert after < 0.6 * before
    with torch.no_grad():
        out = head(feats)
    pred = semantic_inference(out["pred_logits"], out["pred_masks"], (32, 40)).argmax(1)
    valid = label != 255
    assert (pred[valid] == label[valid]).float().mean() > 0.9


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    head = tiny_head()
    # leave the zero initialisation of the deformable offsets / attention weights, under which the encoder
    # queries (and hence the level embedding) have no influence yet
    with torch.no_grad():
        for layer in head.pixel_decoder.layers:
            layer.self_attn.sampling_offsets.weight.normal_(0, 0.01)
            layer.self_attn.attention_weights.weight.normal_(0, 0.01)
    losses = Mask2FormerLoss(3, num_points=128)(head(tiny_features(batch=2)), block_label(2), 255,
                                                generator=torch.Generator().manual_seed(0))
    losses["loss"].backward()
    missing = [n for n, p in head.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())


def test_semantic_inference_hand_computed():
    logits = torch.tensor([[[2.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])  # B=1, Q=2, C=2 + no-object
    masks = torch.tensor([[[[0.0, 3.0]], [[-1.0, 2.0]]]])  # Q=2 masks of 1x2
    scores = semantic_inference(logits, masks, (1, 2))
    p0 = [math.exp(2) / (math.exp(2) + 1 + math.e), 1 / (math.exp(2) + 1 + math.e)]
    p1 = [1 / (2 + math.e), math.e / (2 + math.e)]
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    expect = [[p0[c] * sig(m0) + p1[c] * sig(m1) for m0, m1 in [(0.0, -1.0), (3.0, 2.0)]] for c in range(2)]
    assert torch.allclose(scores[0, :, 0], torch.tensor(expect), atol=1e-6)

    g = torch.Generator().manual_seed(0)
    logits, masks = torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 6, 7, generator=g)
    up = F.interpolate(masks, size=(24, 28), mode="bilinear", align_corners=False).sigmoid()
    reference = torch.einsum("bqc,bqhw->bchw", logits.softmax(-1)[..., :-1], up)
    assert torch.allclose(semantic_inference(logits, masks, (24, 28)), reference, atol=1e-6)


def test_official_mode_counts_ignored_pixels_as_negatives():
    """ignore_mode="official" (the default): a prediction under ignored pixels changes the mask terms, and
    predicting "no mask" there lowers them."""
    criterion = Mask2FormerLoss(3, num_points=256)
    assert criterion.ignore_mode == "official" and criterion.matcher.ignore_mode == "official"
    label = torch.zeros(1, 32, 40, dtype=torch.int64)
    label[:, :, 20:] = 1
    label[:, :, :12] = 255  # mask columns 0..2 of 10 lie under ignored pixels
    outputs = random_outputs(2, aux=0)
    base = loss_value(criterion, outputs, label, 255)
    for shift, compare in ((20.0, "gt"), (-20.0, "lt")):
        moved = random_outputs(2, aux=0)
        moved["pred_masks"][..., :3] += shift
        other = loss_value(criterion, moved, label, 255)
        assert getattr(other["loss_mask"], compare)(base["loss_mask"])


def test_valid_mode_keeps_weight_one_at_the_border():
    """With nothing ignored, "valid" equals "official": a point near the image border keeps weight 1.

    Before: the valid-pixel map was point-sampled with zero padding, so points within half a pixel of the
    border got weights down to ~0.25 and the valid-mode loss differed from the plain mean.
    """
    label = block_label()
    label[:, :4] = 0  # nothing ignored
    outputs = random_outputs(3)
    official = loss_value(Mask2FormerLoss(3, num_points=512), outputs, label, 255)
    valid = loss_value(Mask2FormerLoss(3, num_points=512, ignore_mode="valid"), outputs, label, 255)
    assert all(torch.allclose(official[k], valid[k], rtol=1e-6, atol=1e-7) for k in official)


def test_ignore_mode_is_validated():
    with pytest.raises(ConfigError, match="ignore_mode 'skip'.*official, valid"):
        Mask2FormerLoss(3, ignore_mode="skip")


def test_an_image_with_a_1x1_stride_32_map_is_one_clear_error():
    """A 24x32 image gave a bare torch ValueError from GroupNorm in the tiny pixel decoder (one image, one channel
    per group, one value); larger images with the same batch of one run."""
    from rgbt_bench.models.registry import build_model
    model = build_model("crm", 3).eval()
    with torch.no_grad(), pytest.raises(ConfigError, match="stride-32 feature map is 1x1"):
        model(torch.rand(1, 3, 24, 32), torch.rand(1, 1, 24, 32))
    with torch.no_grad():
        assert model(torch.rand(1, 3, 24, 40), torch.rand(1, 1, 24, 40)).shape == (1, 3, 24, 40)
