"""Loss-landscape slices: centre equals the model's loss, filter normalisation, restored weights."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from animesion_lib.analysis.landscape import (
    collect_batches, filter_normalized_direction, loss_slice_1d, loss_surface_2d, mean_loss, sharpness,
)
from animesion_lib.models import create_model

TINY = dict(embed_dim=16, depth=2, num_heads=2, patch_size=8)


@pytest.fixture(scope="module")
def model_and_batches():
    torch.manual_seed(0)
    model = create_model("vit_micro_p8", num_classes=5, image_size=16, head="ifa", **TINY)
    images, labels = torch.randn(12, 3, 16, 16), torch.arange(12) % 5
    loader = [{"image": images[i:i + 5], "label": labels[i:i + 5]} for i in range(0, 12, 5)]
    return model, collect_batches(loader, max_images=10), images[:10], labels[:10]


def test_collect_batches_stops_at_max_images(model_and_batches):
    _, batches, _, _ = model_and_batches
    assert sum(len(b["label"]) for b in batches) == 10
    assert [len(b["label"]) for b in batches] == [5, 5]


def test_slice_at_zero_is_the_models_loss(model_and_batches):
    model, batches, images, labels = model_and_batches
    model.eval()
    with torch.no_grad():
        expected = F.cross_entropy(model(images)["logits"], labels).item()
    assert mean_loss(model, batches) == pytest.approx(expected, rel=1e-5)
    d = filter_normalized_direction(model, seed=1)
    losses = loss_slice_1d(model, batches, d, alphas=[-0.5, 0.0, 0.5])
    assert losses[1] == pytest.approx(expected, rel=1e-5)
    assert losses[0] != pytest.approx(expected, rel=1e-3)  # moving does change the loss


def test_filter_norms_match_the_weights(model_and_batches):
    model, _, _, _ = model_and_batches
    d = filter_normalized_direction(model, seed=3)
    checked = 0
    for name, w in model.named_parameters():
        if w.dim() >= 2:
            w_norms = w.detach().reshape(w.shape[0], -1).norm(dim=1)
            d_norms = d[name].reshape(w.shape[0], -1).norm(dim=1)
            torch.testing.assert_close(d_norms, w_norms, rtol=1e-4, atol=1e-6)
            assert not torch.allclose(d[name], w.detach())  # a random direction, not the weights
            checked += 1
        else:
            assert torch.count_nonzero(d[name]) == 0  # biases and norms are not moved
    assert checked >= 6
    # different seeds give different directions
    other = filter_normalized_direction(model, seed=4)
    name = next(n for n, w in model.named_parameters() if w.dim() >= 2)
    assert not torch.allclose(d[name], other[name])


def test_weights_are_restored_and_surface_centre_matches(model_and_batches):
    model, batches, _, _ = model_and_batches
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    dx, dy = filter_normalized_direction(model, seed=5), filter_normalized_direction(model, seed=6)
    surface = loss_surface_2d(model, batches, dx, dy, alphas=[-0.4, 0.0, 0.4], betas=[-0.4, 0.0, 0.4])
    assert surface.shape == (3, 3)
    assert surface[1, 1] == pytest.approx(mean_loss(model, batches), rel=1e-5)
    # the β = 0 row of the surface is the 1-D slice along d_x
    row = loss_slice_1d(model, batches, dx, alphas=[-0.4, 0.0, 0.4])
    np.testing.assert_allclose(surface[1], row, rtol=1e-5)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), before[n])


def test_sharpness_of_a_parabola():
    alphas = np.linspace(-1, 1, 21)
    flat, sharp = 0.5 * alphas**2 + 1.0, 4.0 * alphas**2 + 1.0
    s_flat, s_sharp = sharpness(alphas, flat, radius=0.5), sharpness(alphas, sharp, radius=0.5)
    assert s_flat["curvature"] == pytest.approx(1.0, rel=1e-6)
    assert s_sharp["curvature"] == pytest.approx(8.0, rel=1e-6)
    assert s_sharp["rise"] == pytest.approx(4.0 * 0.25, rel=1e-6)
    assert s_flat["loss_at_0"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="does not cover"):
        sharpness(alphas, flat, radius=2.0)
