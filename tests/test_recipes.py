"""Training recipes: crm_paper equals the published configuration, tiny_synthetic equals the built-in defaults,
explicit flags override a recipe and the printout says so, user errors are one line."""
import dataclasses

import pytest

from rgbt_bench.cli import main
from rgbt_bench.errors import ConfigError
from rgbt_bench.training import TrainConfig
from rgbt_bench.training.recipes import RECIPES_DIR, apply_recipe, available_recipes, load_recipe, recipe_lines

# The published CRM training, stated from the official sources (UkcheolShin/CRM_RGBTSeg):
# configs/{MF,PST,KP}dataset/Base-*-SemanticSegmentation.yaml (SOLVER, INPUT, MODEL), swin/CRM_swin_*_224.yaml
# (MODEL.WEIGHTS), train.py (seed 1024, check_val_every_n_epoch=5, precision switch commented out),
# models/Model_RGBT_Mask2Former.py (norm / embedding / relative-position no-decay set, full-model clipping,
# scheduler.step() in training_epoch_end), dataloaders/augmentation.py (ColorAugSSDTransform, RGBT).
PUBLISHED = dict(
    model="crm", iterations=35000, lr=1e-4, weight_decay=0.05, no_decay="official", backbone_lr_mult=0.1,
    grad_clip=0.01, poly_power=0.9, warmup_iterations=0, lr_step="epoch",
    scale_choices=tuple(round(x * 0.1, 1) for x in range(5, 21)),  # MIN_SIZE_TRAIN = int(x * 0.1 * H), x = 5..20
    max_size=1920, resize_antialias=False, photometric="ssd", flip_prob=0.5, amp=False, seed=1024,
    eval_every_epochs=5, ignore_mode="official",
)
PUBLISHED_MODEL_KWARGS = dict(fusion="max", mask_ratio=0.5, mask_patch=32, mask_strategy="rand_comp", w_mws=1.0,
                              w_sdc=1.0, w_sdn=1.0, drop_path=0.3)
PUBLISHED_PER_DATASET = {"mfnet": dict(batch_size=14, crop=(240, 320)),
                         "pst900": dict(batch_size=12, crop=(224, 320)),
                         "kp": dict(batch_size=12, crop=(256, 320))}
PUBLISHED_WEIGHTS = {(d, p): f"swin_{size}_patch4_window7_224.pkl" for d in PUBLISHED_PER_DATASET
                     for p, size in (("swin_t", "tiny"), ("swin_s", "small"), ("swin_b", "base"))}
PUBLISHED_WEIGHTS["kp", "swin_b"] = "swin_base_patch4_window7_224_22kto1k.pkl"


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "swin.pkl"
    path.write_bytes(b"stand-in: the recipe only checks that the file exists")
    return str(path)


@pytest.mark.parametrize("dataset", sorted(PUBLISHED_PER_DATASET))
def test_crm_paper_equals_the_published_configuration(dataset, weights):
    config = apply_recipe("crm_paper", {"dataset": f"{dataset}:/data", "model_kwargs": {"pretrained": weights}})
    expected = {**PUBLISHED, **PUBLISHED_PER_DATASET[dataset]}
    assert {k: getattr(config, k) for k in expected} == expected
    assert config.model_kwargs == {**PUBLISHED_MODEL_KWARGS, "pretrained": weights}
    assert (config.preset, config.select_on, config.recipe) == ("swin_t", "val", "crm_paper")
    assert config.recipe_overrides == {}


@pytest.mark.parametrize("dataset,preset", sorted(PUBLISHED_WEIGHTS))
def test_crm_paper_names_the_imagenet_weights_to_download(dataset, preset):
    with pytest.raises(ConfigError, match=PUBLISHED_WEIGHTS[dataset, preset].replace(".", r"\.")) as exc:
        apply_recipe("crm_paper", {"dataset": f"{dataset}:/data", "preset": preset})
    assert "--pretrained PATH" in str(exc.value) and ".pth" in str(exc.value)


def test_tiny_synthetic_is_the_builtin_default():
    recipe = load_recipe("tiny_synthetic")
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    as_tuples = {k: tuple(v) if isinstance(v, list) else v for k, v in recipe.settings.items()}
    assert as_tuples == {k: defaults[k] for k in recipe.settings}
    assert {"crm_paper", "tiny_synthetic"} <= set(available_recipes())
    config = apply_recipe("tiny_synthetic", {})
    assert dataclasses.replace(config, recipe=None) == TrainConfig()


def test_explicit_values_override_the_recipe_and_are_recorded(weights):
    config = apply_recipe("crm_paper", {"dataset": "kp:/data", "lr": 2e-4, "crop": (256, 320), "preset": "swin_s",
                                        "model_kwargs": {"pretrained": weights, "drop_path": 0.2}})
    assert config.lr == 2e-4 and config.model_kwargs["drop_path"] == 0.2 and config.preset == "swin_s"
    assert config.recipe_overrides == {"lr": 1e-4, "model_kwargs.drop_path": 0.3}  # crop and preset agree
    lines = recipe_lines(config)
    assert lines[0] == "recipe crm_paper; explicit settings override it: lr, model_kwargs.drop_path"
    assert "  lr: 0.0002  (overridden; the recipe says 0.0001)" in lines
    assert "  batch_size: 12" in lines and "  select_on: val" in lines
    assert any(line.startswith("  model_kwargs:") and line.endswith("(overridden; the recipe says {drop_path: 0.3})")
               for line in lines)


def test_a_copied_recipe_file_is_used_by_path(tmp_path, weights):
    copy = tmp_path / "mine.yaml"
    copy.write_text((RECIPES_DIR / "crm_paper.yaml").read_text().replace("batch_size: 14", "batch_size: 7"))
    config = apply_recipe(str(copy), {"dataset": "mfnet:/data", "model_kwargs": {"pretrained": weights}})
    assert config.batch_size == 7 and config.recipe == str(copy)


def _cli(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(["train", *args])
    return exc.value.code, capsys.readouterr().err.strip()


def test_cli_dry_run_prints_the_resolved_settings(capsys, weights):
    main(["train", "--recipe", "crm_paper", "--dataset", "mfnet:/data", "--pretrained", weights, "--lr", "2e-4",
          "--select-on", "test", "--dry-run"])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "recipe crm_paper; explicit settings override it: lr"
    for line in ("  lr: 0.0002  (overridden; the recipe says 0.0001)", "  batch_size: 14", "  crop: [240, 320]",
                 "  lr_step: epoch", "  grad_clip: 0.01", "  amp: false", "  select_on: test",
                 "  scale_choices: [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0]"):
        assert line in out
    main(["train", "--dry-run"])
    assert capsys.readouterr().out.splitlines()[0] == "recipe tiny_synthetic"


@pytest.mark.parametrize("args, message", [
    (["--recipe", "crm_paper", "--dataset", "mfnet:/data"], "download swin_tiny_patch4_window7_224.pkl"),
    (["--recipe", "crm_paper", "--dataset", "mfnet:/data", "--pretrained", "nowhere.pkl"],
     "pretrained weights nowhere.pkl do not exist; recipe crm_paper expects swin_tiny_patch4_window7_224.pkl"),
    (["--recipe", "crm_paper"], "recipe crm_paper has settings for mfnet, pst900, kp, not 'synthetic'"),
    (["--recipe", "crm_paper", "--dataset", "kp:/data", "--preset", "tiny"],
     "recipe crm_paper covers presets swin_t, swin_s, swin_b, not 'tiny'"),
    (["--recipe", "crm_paper", "--dataset", "kp:/data", "--model", "rtfnet"], "trains model 'crm', not 'rtfnet'"),
    (["--recipe", "crm_papr"], "unknown recipe 'crm_papr'; expected a .yaml path or one of: crm_paper"),
])
def test_recipe_errors_are_one_line(capsys, args, message):
    code, err = _cli(capsys, *args, "--dry-run")
    assert code == 2 and "\n" not in err and message in err


@pytest.mark.parametrize("text, message", [
    ("settings: {select_on: test}", "select_on cannot be set by a recipe"),
    ("settings: {learning_rate: 0.1}", "unknown setting 'learning_rate'"),
    ("steps: 3", "unknown key 'steps'"),
    ("settings: [1, 2]", "expected a mapping of training settings"),
    ("settings: {lr: [", "is not valid YAML"),
])
def test_bad_recipe_files_are_one_line(capsys, tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, err = _cli(capsys, "--recipe", str(path), "--dry-run")
    assert code == 2 and "\n" not in err and message in err and str(path) in err
