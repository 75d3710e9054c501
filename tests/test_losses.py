"""Each loss against a hand computation; edge masks; objectives; config errors."""

import math

import pytest
import torch

from grizal.losses import (
    bce_loss,
    compute_losses,
    cosine_alignment_loss,
    infonce_loss,
    loss_config,
    temporal_iou_loss,
)
from grizal.model import ConfigError


def test_bce_matches_hand_computation():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = [[0.5, 1 / (1 + math.exp(-2))], [1 / (1 + math.exp(1)), 1 / (1 + math.exp(-3))]]
    hand = -(math.log(p[0][0]) + math.log(1 - p[0][1]) + math.log(1 - p[1][0]) + math.log(p[1][1])) / 4
    assert bce_loss(logits, targets).item() == pytest.approx(hand, rel=1e-6)


def test_temporal_iou_matches_hand_computation():
    probs = torch.tensor([[0.5, 1.0, 0.0, 0.25], [0.0, 0.0, 0.0, 0.0]])
    targets = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    # sample 0: I = 0.5 + 1 = 1.5, U = 1.75 + 2 - 1.5 = 2.25; sample 1: I = 0, U = 2
    hand_smooth_1 = ((1 - 2.5 / 3.25) + (1 - 1 / 3)) / 2
    hand_no_smooth = ((1 - 1.5 / 2.25) + 1.0) / 2
    assert temporal_iou_loss(probs, targets, smooth=1.0).item() == pytest.approx(hand_smooth_1, rel=1e-6)
    assert temporal_iou_loss(probs, targets, smooth=0.0).item() == pytest.approx(hand_no_smooth, rel=1e-6)


def test_temporal_iou_prefers_one_contiguous_sharp_segment():
    targets = torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0, 0.0]])
    sharp = torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0, 0.0]])
    blurred = torch.tensor([[0.3, 0.7, 1.0, 0.7, 0.3, 0.0]])
    holed = torch.tensor([[0.0, 1.0, 0.2, 1.0, 0.0, 0.0]])
    assert temporal_iou_loss(sharp, targets).item() == pytest.approx(0.0, abs=1e-7)
    assert temporal_iou_loss(sharp, targets) < temporal_iou_loss(blurred, targets)
    assert temporal_iou_loss(sharp, targets) < temporal_iou_loss(holed, targets)


def test_cosine_alignment_matches_hand_computation():
    z_cls = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z_ft = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[3.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])
    targets = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # present snippets: (0,0) cos 1, (0,1) cos 0, (1,2) cos 0 -> distances 0, 1, 1
    assert cosine_alignment_loss(z_ft, z_cls, targets).item() == pytest.approx(2 / 3, rel=1e-6)
    # a video without the action contributes nothing
    assert cosine_alignment_loss(z_ft[:1], z_cls[:1], targets[:1]).item() == pytest.approx(0.5, rel=1e-6)


def _hand_infonce_row(scores, positive):
    return math.log(sum(math.exp(s) for s in scores)) - positive


def test_infonce_matches_hand_computation():
    tau = 0.5
    videos = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    classes = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    cos = [[1.0, 1 / math.sqrt(2), 0.0], [0.0, 1 / math.sqrt(2), 1.0], [1 / math.sqrt(2), 1.0, 1 / math.sqrt(2)]]
    s = [[c / tau for c in row] for row in cos]
    present = torch.tensor([True, True, True])
    video_to_class = [_hand_infonce_row(s[i], s[i][i]) for i in range(3)]
    class_to_video = [_hand_infonce_row([s[j][i] for j in range(3)], s[i][i]) for i in range(3)]
    hand = 0.5 * (sum(video_to_class) / 3 + sum(class_to_video) / 3)
    assert infonce_loss(videos, classes, present, None, tau).item() == pytest.approx(hand, rel=1e-6)

    # samples 0 and 2 share a class: not each other's negatives; sample 1's video has no action
    ids = torch.tensor([7, 8, 7])
    present = torch.tensor([True, False, True])
    video_to_class = [_hand_infonce_row([s[0][0], s[0][1]], s[0][0]), _hand_infonce_row([s[2][1], s[2][2]], s[2][2])]
    # class -> video: candidates are present videos of other classes: none -> no anchor has a negative
    hand = 0.5 * sum(video_to_class) / 2
    assert infonce_loss(videos, classes, present, ids, tau).item() == pytest.approx(hand, rel=1e-6)


def test_infonce_is_zero_without_a_negative():
    videos, classes = torch.randn(2, 4, requires_grad=True), torch.randn(2, 4)
    same = torch.tensor([3, 3])
    loss = infonce_loss(videos, classes, torch.tensor([True, True]), same)
    assert loss.item() == 0.0
    loss.backward()  # still part of the graph
    assert infonce_loss(videos, classes, torch.tensor([False, False])).item() == 0.0


def _outputs(batch=3, length=8, width=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, generator=gen, requires_grad=True)
    z_ft = torch.randn(batch, length, width, generator=gen, requires_grad=True)
    probs = torch.sigmoid(logits)
    return {
        "logits": logits,
        "probs": probs,
        "z_ft": z_ft,
        "z_cls": torch.randn(batch, width, generator=gen, requires_grad=True),
        "video_embedding": (probs[..., None] * z_ft).sum(1) / probs.sum(1, keepdim=True),
    }


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_all_losses_are_finite_for_all_zero_and_all_one_masks(fill):
    out = _outputs()
    targets = torch.full((3, 8), fill)
    total, log = compute_losses(out, targets, torch.tensor([0, 1, 2]))
    assert math.isfinite(total.item()) and all(math.isfinite(value) for value in log.values())
    total.backward()
    for key in ("logits", "z_ft", "z_cls"):
        assert torch.isfinite(out[key].grad).all()
    # an all-zero mask is best answered by all-zero probabilities
    if fill == 0.0:
        assert temporal_iou_loss(torch.zeros(1, 8), torch.zeros(1, 8)).item() == 0.0


def test_weighted_total_and_objectives():
    out = _outputs()
    targets = torch.zeros(3, 8)
    targets[0, 1:4] = 1
    targets[2, 5:] = 1
    ids = torch.tensor([0, 1, 2])
    weights = {"bce": 2.0, "tiou": 0.5, "cosine": 0.25, "infonce": 3.0, "temperature": 0.1}
    total, log = compute_losses(out, targets, ids, weights)
    terms = {
        "bce": bce_loss(out["logits"], targets),
        "tiou": temporal_iou_loss(out["probs"], targets),
        "cosine": cosine_alignment_loss(out["z_ft"], out["z_cls"], targets),
        "infonce": infonce_loss(out["video_embedding"], out["z_cls"], targets.amax(1) > 0.5, ids, 0.1),
    }
    assert set(log) == {"bce", "tiou", "cosine", "infonce", "total"}
    hand = sum(weights[name] * value.item() for name, value in terms.items())
    assert total.item() == pytest.approx(hand, rel=1e-6) and log["total"] == pytest.approx(hand, rel=1e-6)

    supervised, log = compute_losses(out, targets, ids, {**weights, "objective": "supervised"})
    assert set(log) == {"bce", "tiou", "total"}
    assert supervised.item() == pytest.approx(2.0 * terms["bce"].item() + 0.5 * terms["tiou"].item(), rel=1e-6)

    self_supervised, log = compute_losses(out, targets, ids, {**weights, "objective": "self_supervised"})
    assert set(log) == {"cosine", "infonce", "total"}
    self_supervised.backward()
    assert out["logits"].grad is not None  # the head still learns, through the probability-weighted pooling
    hand = 0.25 * terms["cosine"].item() + 3.0 * terms["infonce"].item()
    assert self_supervised.item() == pytest.approx(hand, rel=1e-6)

    _, log = compute_losses(out, targets, ids, {"cosine": 0.0})
    assert "cosine" not in log


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"bce_weight": 1.0}, "unknown loss setting 'bce_weight'"),
        ({"objective": "semi"}, "loss.objective must be one of"),
        ({"tiou": -1}, "loss.tiou must be a number >= 0"),
        ({"temperature": 0}, "loss.temperature must be a number > 0"),
    ],
)
def test_bad_loss_settings_are_clear_errors(section, message):
    with pytest.raises(ConfigError, match=message):
        loss_config(section)
