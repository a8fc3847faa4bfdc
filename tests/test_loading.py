"""Model loading: rgbt-bench checkpoints, bare state dicts, user models, and the errors a user can cause."""
import textwrap

import pytest
import torch

from rgbt_bench.checkpoint import save_checkpoint
from rgbt_bench.errors import CheckpointError, ConfigError
from rgbt_bench.models.loading import load_model, model_from_checkpoint
from rgbt_bench.models.registry import build_model


def make_checkpoint(path, model_name="rtfnet", preset="tiny", num_classes=9, model_kwargs=None, seed=0):
    torch.manual_seed(seed)
    model = build_model(model_name, num_classes, preset, **(model_kwargs or {}))
    save_checkpoint(path, {"model": model_name, "preset": preset, "num_classes": num_classes,
                           "class_names": [f"c{i}" for i in range(num_classes)], "dataset": "synthetic",
                           "config": {"model_kwargs": dict(model_kwargs or {})}, "metrics": {},
                           "state_dict": model.state_dict()})
    return model.eval()


def same_output(a, b, size=(32, 40)):
    torch.manual_seed(1)
    rgb, thermal = torch.rand(1, 3, *size), torch.rand(1, 1, *size)
    a.eval(), b.eval()
    with torch.no_grad():
        torch.testing.assert_close(a(rgb, thermal), b(rgb, thermal))


def test_load_model_without_checkpoint_builds_fresh():
    model, payload = load_model("mfnet", 4, "tiny")
    assert payload == {}
    assert model.classify[0].out_channels == 4
    assert next(model.parameters()).device.type == "cpu"


def test_model_from_checkpoint_round_trip(tmp_path):
    ref = make_checkpoint(tmp_path / "m.pt", "mfnet", num_classes=5)
    model, ckpt = model_from_checkpoint(tmp_path / "m.pt")
    assert ckpt["model"] == "mfnet" and ckpt["num_classes"] == 5
    same_output(ref, model)


def test_model_kwargs_from_checkpoint_and_pretrained_not_reread(tmp_path):
    ref = make_checkpoint(tmp_path / "crm.pt", "rtfnet", model_kwargs={"crm_training": True, "w_sdc": 0.5})
    ckpt = torch.load(tmp_path / "crm.pt", weights_only=True)
    ckpt["config"]["model_kwargs"]["pretrained"] = str(tmp_path / "gone" / "resnet18.pth")
    save_checkpoint(tmp_path / "crm2.pt", ckpt)
    model, _ = model_from_checkpoint(tmp_path / "crm2.pt")
    assert model.crm_training and model.w_sdc == 0.5
    torch.testing.assert_close(model.mask_token_rgb, ref.mask_token_rgb)
    same_output(ref, model)
    model2, _ = load_model("rtfnet", 9, "tiny", checkpoint=tmp_path / "crm2.pt")
    same_output(ref, model2)


def test_load_model_refuses_other_class_count_architecture_and_preset(tmp_path):
    make_checkpoint(tmp_path / "r.pt", "rtfnet", num_classes=9)
    with pytest.raises(CheckpointError, match=r"trained for 9 classes, but 5 are expected"):
        load_model("rtfnet", 5, "tiny", checkpoint=tmp_path / "r.pt")
    with pytest.raises(CheckpointError, match=r"holds model 'rtfnet' .*not 'mfnet'"):
        load_model("mfnet", 9, "tiny", checkpoint=tmp_path / "r.pt")
    with pytest.raises(CheckpointError, match=r"holds preset 'tiny' of 'rtfnet', not 'rtfnet50'"):
        load_model("rtfnet", 9, "rtfnet50", checkpoint=tmp_path / "r.pt")


def test_checkpoint_whose_weights_do_not_fit_its_metadata(tmp_path):
    ckpt_model = build_model("rtfnet", 5, "tiny")
    save_checkpoint(tmp_path / "lying.pt", {"model": "rtfnet", "preset": "tiny", "num_classes": 9,
                                            "config": {}, "state_dict": ckpt_model.state_dict()})
    with pytest.raises(CheckpointError, match=r"does not fit the model: .*differ in shape.*9 classes"):
        model_from_checkpoint(tmp_path / "lying.pt")


def test_bare_state_dict_files(tmp_path):
    torch.manual_seed(0)
    ref = build_model("early_fusion", 3, "tiny").eval()
    torch.save(ref.state_dict(), tmp_path / "bare.pth")
    torch.save({f"module.{k}": v for k, v in ref.state_dict().items()}, tmp_path / "ddp.pth")
    for name in ("bare.pth", "ddp.pth"):
        model, payload = load_model("early_fusion", 3, "tiny", checkpoint=tmp_path / name)
        assert set(payload) == {"state_dict"}
        same_output(ref, model)
    with pytest.raises(CheckpointError, match=r"does not fit the model"):
        load_model("rtfnet", 3, "tiny", checkpoint=tmp_path / "bare.pth")
    with pytest.raises(CheckpointError, match=r"bare.pth has no 'state_dict'"):
        model_from_checkpoint(tmp_path / "bare.pth")
    torch.save({"state_dict": ref.state_dict()}, tmp_path / "wrapped.pth")
    with pytest.raises(CheckpointError, match=r"does not record model, preset, num_classes"):
        model_from_checkpoint(tmp_path / "wrapped.pth")


class NotWeights:
    """Pickled class instances are refused by weights_only loading."""

    def __init__(self):
        self.payload = torch.zeros(2)


def test_unsafe_garbage_and_missing_files_are_clear_errors(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": NotWeights()}, tmp_path / "unsafe.pt")
    with pytest.raises(CheckpointError, match=r"unsafe.pt was refused"):
        load_model("rtfnet", 9, "tiny", checkpoint=tmp_path / "unsafe.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file at all")
    with pytest.raises(CheckpointError, match=r"checkpoint \S*garbage.pt "):
        load_model("rtfnet", 9, "tiny", checkpoint=tmp_path / "garbage.pt")
    with pytest.raises(CheckpointError, match=r"missing.pt does not exist"):
        model_from_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"missing.pt does not exist"):
        load_model("mfnet", 9, "tiny", checkpoint=tmp_path / "missing.pt")


USER_MODULE = textwrap.dedent('''
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self, num_classes, width):
            super().__init__()
            self.head = nn.Conv2d(4, num_classes, 1)
            self.width = width

        def forward(self, rgb, thermal):
            return self.head(torch.cat([rgb, thermal], 1))

    def build(num_classes, width=1):
        return Tiny(num_classes, width)
''')


def test_user_model_by_module_spec(tmp_path, monkeypatch):
    (tmp_path / "my_rgbt_model.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    model, _ = load_model("my_rgbt_model:build", 4, width=3)
    assert model.width == 3 and model.head.out_channels == 4
    save_checkpoint(tmp_path / "user.pt", {"model": "my_rgbt_model:build", "preset": "tiny", "num_classes": 4,
                                           "config": {"model_kwargs": {"width": 3}},
                                           "state_dict": model.state_dict()})
    again, _ = model_from_checkpoint(tmp_path / "user.pt")
    assert again.width == 3
    same_output(model, again)
    with pytest.raises(ConfigError, match=r"has no callable 'nope'"):
        load_model("my_rgbt_model:nope", 4)


def test_load_model_places_model_on_device(tmp_path):
    make_checkpoint(tmp_path / "m.pt", "thermal_only", num_classes=3)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, _ = load_model("thermal_only", 3, "tiny", checkpoint=tmp_path / "m.pt", device=device)
    assert next(model.parameters()).device.type == device
