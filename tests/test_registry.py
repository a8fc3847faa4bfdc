"""The generic registry (rgbt_bench.registry) and the registries built on it: lazy entries, one lookup
message, listing; dataset facts read from DatasetInfo; CLI help built from the registries."""
import sys

import pytest
from click.testing import CliRunner

from rgbt_bench.cli import COMMANDS, cli
from rgbt_bench.corruptions import CORRUPTIONS
from rgbt_bench.datasets import DATASETS, dataset_class, open_dataset
from rgbt_bench.errors import ConfigError
from rgbt_bench.models import MODELS, main_models
from rgbt_bench.registry import Registry
from rgbt_bench.training.config import TrainConfig, default_crop


def test_lazy_entries_are_imported_on_first_lookup_only():
    registry = Registry("widget", {"dumps": "json:dumps", "direct": len})
    module = "test_registry_lazy_module"
    registry["later"] = f"{module}:VALUE"
    assert registry.names() == ["dumps", "direct", "later"] and module not in sys.modules
    import json
    assert registry.lookup("dumps") is json.dumps and registry["direct"] is len
    with pytest.raises(ModuleNotFoundError):
        registry.lookup("later")


def test_lookup_error_names_kind_choices_alternative_and_closest():
    registry = Registry("widget", {"alpha": 1, "beta": 2}, alternative="or 'module:fn'")
    with pytest.raises(ConfigError) as exc:
        registry.lookup("alpah")
    assert str(exc.value) == "unknown widget 'alpah'; expected one of alpha, beta or 'module:fn'. Did you mean 'alpha'?"
    with pytest.raises(ConfigError) as exc:
        Registry("widget", {"alpha": 1}).lookup("zzz")
    assert str(exc.value) == "unknown widget 'zzz'; expected one of alpha."


def test_every_registry_uses_the_one_lookup():
    for registry, typo, name in ((DATASETS, "mfnte", "mfnet"), (MODELS, "rtfnte", "rtfnet"),
                                 (CORRUPTIONS, "plasma_fgo", "plasma_fog"), (COMMANDS, "swep", "sweep"),
                                 (CORRUPTIONS, "THERMAL_NOISE", "thermal_noise"), (MODELS, "RTFNet", "rtfnet")):
        assert isinstance(registry, Registry)
        assert registry.suggestion(typo) == f" Did you mean '{name}'?"


def test_model_entries_hold_the_model_facts():
    assert main_models() == ("crm", "crm_nomask", "rtfnet", "rtfnet_crm", "mfnet", "early_fusion", "rgb_only",
                             "thermal_only")
    assert TrainConfig(model="crm").iterations == MODELS["crm"].iterations == 900
    assert TrainConfig(model="mfnet").iterations == MODELS["mfnet"].iterations == 1000
    assert TrainConfig(model="tests.user_model_example:build").iterations == 1000
    from rgbt_bench.models.crm.model import PRESETS
    assert MODELS["crm"].presets == tuple(PRESETS)
    assert all(entry.importer is None or ":" in entry.importer for entry in MODELS.values())
    assert all(entry.control is None or MODELS[entry.control].control is None for entry in MODELS.values())


def test_ablation_variants_are_their_base_architecture_with_options():
    """A variant entry builds its base model with the entry's options; the user's kwargs still override them."""
    assert MODELS["crm_nomask"].options == {"masking": False} and MODELS["crm"].control == "crm_nomask"
    assert MODELS["crm_nosd"].options == {"w_sdc": 0.0, "w_sdn": 0.0} and MODELS["crm_nosd"].control == "crm_nomask"
    assert MODELS["rtfnet_crm"].control == "rtfnet" and MODELS["mfnet_crm"].control == "mfnet"
    assert MODELS["crm_nomask"].presets == MODELS["crm"].presets and MODELS["crm_nomask"].importer is None
    from rgbt_bench.models import build_model
    nomask, crm = build_model("crm_nomask", 3), build_model("crm", 3)
    assert not nomask.masking and crm.masking and nomask.state_dict().keys() == crm.state_dict().keys()
    assert build_model("rtfnet_crm", 3).crm_training and not build_model("rtfnet", 3).crm_training
    assert build_model("crm_nosd", 3).objective.w_sdn == 0.0
    assert build_model("crm_nosd", 3, w_sdn=0.5).objective.w_sdn == 0.5


def test_dataset_facts_come_from_dataset_info():
    assert default_crop("mfnet", (480, 640)) == dataset_class("mfnet").info.recipe_crop == (240, 320)
    assert default_crop("pst900", (720, 1280)) == (224, 320) and default_crop("kp", (512, 640)) == (256, 320)
    assert default_crop("synthetic", (120, 160)) == (60, 80) and default_crop("elsewhere", (40, 50)) == (32, 32)
    for name in DATASETS:
        cls = dataset_class(name)
        with pytest.raises(ConfigError, match=f"^dataset '{name}' has no split 'nope'; expected one of "
                                              f"{', '.join(cls.info.splits)}$"):
            cls(None, "nope")
    with pytest.raises(ConfigError, match=r"no split 'val'; expected one of train, test \(pst900 has no validation"):
        open_dataset("pst900:/nowhere", "val")


def test_cli_help_is_built_from_the_registries():
    for command in ("sweep", "train"):
        text = " ".join(CliRunner().invoke(cli, [command, "--help"]).output.split())
        assert "Dataset spec: synthetic, mfnet:/path, pst900:/path or kp:/path." in text
    top = [line.split(None, 1) for line in CliRunner().invoke(cli, ["--help"]).output.splitlines()]
    listed = {parts[0]: parts[1] for parts in top if len(parts) == 2 and parts[0] in COMMANDS}
    assert listed == {name: command.help for name, command in COMMANDS.items()}


def test_readme_models_table_matches_the_registry():
    """The README's copy of each model's presets, modalities and whether `run` trains it, compared with the
    registry's."""
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Models", 1)[1].split("\n\n", 2)[1]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()[2:]]
    table = {name.strip("`"): (presets, modalities, main) for name, presets, modalities, main, _ in rows}
    assert table == {name: (", ".join(e.presets), "+".join(e.modalities), "yes" if e.main else "no")
                     for name, e in MODELS.items()}
