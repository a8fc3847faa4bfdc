"""ignore_mode="official" equals the official Mask2Former / CRM criterion, on labels with ignored AND padded pixels.

`official_loss` is an independent, deliberately slow re-statement of what the official code computes
(facebookresearch/Mask2Former mask2former/modeling/{criterion,matcher}.py, copied unchanged into
UkcheolShin/CRM_RGBTSeg models/mask2former/; targets as CRM_RGBTSeg dataloaders/MF_dataset.py and
rgbt_maskformer_model.py prepare_targets build them):
- targets: the classes present in the UNPADDED label minus the ignore label, one binary mask each, then
  zero-padded to the padded image size;
- per prediction layer (final, then each aux): Hungarian matching on a fresh draw of uniform points per
  image, cost = 2 * (-p(class)) + 5 * mean BCE + 5 * dice, every pair on the same points; then CE with
  no-object weight 0.1 over all queries, and BCE / dice on importance-sampled points (3x oversampling,
  75 % most uncertain, the rest uniform), plain means over points, summed over masks / number of masks;
- every random draw from torch's global generator, in the official order (matcher per image, then the
  candidates and the uniform rest of the mask loss), so seeding it makes both sides draw the same points.
"""
import itertools

import torch
import torch.nn.functional as F

from rgbt_bench.models.crm import build_crm
from rgbt_bench.models.mask2former import Mask2FormerLoss

IGNORE = 255


def sample(maps, coords):
    """detectron2 point_sample: bilinear, align_corners=False, zero outside; maps [N,1,H,W], coords [N,P,2]."""
    return F.grid_sample(maps, 2.0 * coords.unsqueeze(2) - 1.0, align_corners=False)[:, 0, :, 0]


def official_targets(label, ignore, padded_hw):
    targets = []
    for lab in label:
        classes = [c for c in sorted(set(lab.flatten().tolist())) if c != ignore]
        masks = torch.zeros(len(classes), *padded_hw)
        for i, c in enumerate(classes):
            masks[i, :lab.shape[0], :lab.shape[1]] = (lab == c).float()
        targets.append((torch.tensor(classes, dtype=torch.int64), masks))
    return targets


def bce(logits, target):
    """Mean over points of the BCE with a soft target: t * softplus(-x) + (1 - t) * softplus(x)."""
    return (target * F.softplus(-logits) + (1 - target) * F.softplus(logits)).mean()


def dice(logits, target):
    p = logits.sigmoid()
    return 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)


def brute_force_match(cost):
    """Pairs (query, target) of the minimum-cost assignment, sorted by query (as linear_sum_assignment)."""
    q, k = cost.shape
    best = min(itertools.permutations(range(q), k), key=lambda rows: sum(cost[r, c].item() for c, r in enumerate(rows)))
    return sorted(zip(best, range(k)))


def official_layer(logits, masks, targets, num_points, num_masks):
    num_classes = logits.shape[-1] - 1
    pairs = []  # (image, query, target)
    for b, (classes, tmasks) in enumerate(targets):
        coords = torch.rand(1, num_points, 2)
        out = sample(masks[b][:, None], coords.expand(masks.shape[1], -1, -1))
        tgt = sample(tmasks[:, None], coords.expand(len(classes), -1, -1))
        prob = logits[b].softmax(-1)
        cost = torch.tensor([[5 * bce(out[q], tgt[k]) - 2 * prob[q, classes[k]] + 5 * dice(out[q], tgt[k])
                              for k in range(len(classes))] for q in range(masks.shape[1])])
        pairs += [(b, q, k) for q, k in brute_force_match(cost)]

    target_classes = torch.full(logits.shape[:2], num_classes)
    for b, q, k in pairs:
        target_classes[b, q] = targets[b][0][k]
    class_weight = torch.ones(num_classes + 1)
    class_weight[-1] = 0.1
    loss_ce = F.cross_entropy(logits.transpose(1, 2), target_classes, class_weight)

    src = torch.stack([masks[b, q] for b, q, _ in pairs])[:, None]
    tgt = torch.stack([targets[b][1][k] for b, _, k in pairs])[:, None]
    candidates = torch.rand(len(pairs), 3 * num_points, 2)
    n_uncertain = int(0.75 * num_points)
    top = (-sample(src, candidates).abs()).topk(n_uncertain, dim=1).indices
    coords = torch.cat([torch.stack([candidates[i, top[i]] for i in range(len(pairs))]),
                        torch.rand(len(pairs), num_points - n_uncertain, 2)], dim=1)
    point_logits, point_labels = sample(src, coords), sample(tgt, coords)
    loss_mask = sum(bce(point_logits[i], point_labels[i]) for i in range(len(pairs))) / num_masks
    loss_dice = sum(dice(point_logits[i], point_labels[i]) for i in range(len(pairs))) / num_masks
    return 2 * loss_ce + 5 * loss_mask + 5 * loss_dice


def official_loss(outputs, label, ignore, padded_hw, num_points):
    targets = official_targets(label, ignore, padded_hw)
    num_masks = max(sum(len(c) for c, _ in targets), 1)
    layers = [outputs] + list(outputs.get("aux_outputs", []))
    return sum(official_layer(o["pred_logits"], o["pred_masks"], targets, num_points, num_masks) for o in layers)


def labels_with_ignored_pixels(h, w, seed):
    """Two labels with classes 0..2, a block of ignored pixels and scattered ignored ones."""
    g = torch.Generator().manual_seed(seed)
    label = torch.zeros(2, h, w, dtype=torch.int64)
    label[:, :, w // 2:] = 1
    label[0, h // 2:, :] = 2
    label[1, :h // 3, : w // 3] = IGNORE
    label[torch.rand(2, h, w, generator=g) < 0.05] = IGNORE
    return label


def test_loss_equals_the_official_formula_with_ignored_and_padded_pixels():
    """A 28x40 label inside a 32x40 padded map (predictions 8x10): ours gets the label padded with the ignore
    index, the reference the official zero-padded masks."""
    g = torch.Generator().manual_seed(0)
    label = labels_with_ignored_pixels(28, 40, seed=1)
    make = lambda: {"pred_logits": torch.randn(2, 6, 4, generator=g),  # noqa: E731
                    "pred_masks": 3 * torch.randn(2, 6, 8, 10, generator=g)}
    outputs = make()
    outputs["aux_outputs"] = [make(), make()]
    padded = F.pad(label, (0, 0, 0, 4), value=IGNORE)
    torch.manual_seed(7)
    ours = Mask2FormerLoss(3, num_points=96)(outputs, padded, IGNORE)["loss"]
    torch.manual_seed(7)
    reference = official_loss(outputs, label, IGNORE, (32, 40), num_points=96)
    assert torch.allclose(ours, reference, rtol=1e-5)
    torch.manual_seed(7)
    left_out = Mask2FormerLoss(3, num_points=96, ignore_mode="valid")(outputs, padded, IGNORE)["loss"]
    assert not torch.allclose(left_out, reference, rtol=1e-3)


def test_crm_loss_pads_labels_like_the_official_zero_padded_masks():
    """CRM.loss (eval: the clean fused segmentation loss) on 56x72 inputs padded to 64x96 equals the official
    criterion on the head's outputs with zero-padded masks built from the 56x72 label."""
    torch.manual_seed(0)
    crm = build_crm(3, "tiny").eval()
    g = torch.Generator().manual_seed(2)
    rgb, thermal = torch.rand(2, 3, 56, 72, generator=g), torch.rand(2, 1, 56, 72, generator=g)
    label = labels_with_ignored_pixels(56, 72, seed=3)
    with torch.no_grad():
        x_rgb, x_thermal = crm._prepare(rgb, thermal)
        outputs = crm.head(crm.backbone(x_rgb, x_thermal)[0])
        torch.manual_seed(11)
        ours = crm.loss(rgb, thermal, label, IGNORE)["loss"]
    torch.manual_seed(11)
    reference = official_loss(outputs, label, IGNORE, (64, 96), num_points=crm.objective.criterion.num_points)
    assert torch.allclose(ours, reference, rtol=1e-5)
