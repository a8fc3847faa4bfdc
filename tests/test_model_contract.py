"""The model contract (rgbt_bench.models.registry) for EVERY registered model, at the tiny preset on tiny
images: adding a model to the registry gets these tests without editing any test.

Logits [B, C, H, W] at odd input sizes and finite; `loss()` returns finite scalars with a "loss" that
trains every parameter it reaches; `forward_single` for each modality the entry lists (when the model has
it) agrees in shape; a checkpoint round trip gives identical logits; an entry's published-weight importer
(when it has one) resolves to that model's importer."""
import pytest
import torch

from rgbt_bench.checkpoint import save_checkpoint
from rgbt_bench.models import MODELS, build_model
from rgbt_bench.models.loading import load_model
from rgbt_bench.registry import import_target

NAMES = MODELS.names()
CLASSES = 5
IGNORE = 255


def inputs(size, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    rgb, thermal = torch.rand(batch, 3, *size, generator=g), torch.rand(batch, 1, *size, generator=g)
    label = torch.randint(0, CLASSES, (batch, *size), generator=g)
    label[:, :2] = IGNORE
    return rgb, thermal, label


def tiny(name, seed=0):
    torch.manual_seed(seed)
    return build_model(name, CLASSES, "tiny")


@pytest.mark.parametrize("name", NAMES)
def test_entry_is_complete(name):
    entry = MODELS[name]
    assert entry.name == name and "tiny" in entry.presets and entry.presets[0] == "tiny"
    assert set(entry.modalities) <= {"rgb", "thermal"} and entry.modalities
    assert entry.iterations >= 1 and entry.step_cost > 0 and entry.paper and entry.description


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(37, 45), (50, 29)])
def test_logits_at_odd_sizes_are_finite(name, size):
    model = tiny(name).eval()
    rgb, thermal, _ = inputs(size)
    with torch.no_grad():
        logits = model(rgb, thermal)
    assert logits.shape == (2, CLASSES, *size) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", NAMES)
def test_loss_contract(name):
    model = tiny(name).train()
    if not hasattr(model, "loss"):
        pytest.skip(f"{name} has no loss(); training uses cross-entropy of its logits")
    rgb, thermal, label = inputs((37, 45))
    terms = model.loss(rgb, thermal, label, IGNORE)
    assert "loss" in terms
    for key, value in terms.items():
        assert torch.is_tensor(value) and value.dim() == 0 and torch.isfinite(value), key
    terms["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", NAMES)
def test_forward_single_for_each_listed_modality(name):
    model = tiny(name).eval()
    if not hasattr(model, "forward_single"):
        pytest.skip(f"{name} has no forward_single")
    rgb, thermal, _ = inputs((37, 45))
    with torch.no_grad():
        for modality in MODELS[name].modalities:
            out = model.forward_single(rgb if modality == "rgb" else thermal, modality)
            assert out.shape == (2, CLASSES, 37, 45) and torch.isfinite(out).all(), modality


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip_gives_identical_logits(name, tmp_path):
    model = tiny(name, seed=3)
    rgb, thermal, _ = inputs((37, 45), seed=1)
    with torch.no_grad():
        model.train()(rgb, thermal)  # BatchNorm running statistics away from their initial values
        expected = model.eval()(rgb, thermal)
    path = save_checkpoint(tmp_path / f"{name}.pt", {"model": name, "preset": "tiny", "num_classes": CLASSES,
                                                      "config": {}, "state_dict": model.state_dict()})
    torch.manual_seed(99)  # the loaded weights, not the initialisation, must decide the logits
    loaded, _ = load_model(name, CLASSES, "tiny", checkpoint=path)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(rgb, thermal), expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_published_weight_importer_resolves(name):
    entry = MODELS[name]
    if entry.importer is None:
        pytest.skip(f"{name} has no importer for published weights")
    importer = import_target(entry.importer)
    assert getattr(importer, "model", name) == name
    assert callable(importer) or callable(getattr(importer, "identify", None))
