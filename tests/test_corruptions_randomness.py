"""How corruptions use randomness: common random numbers across severities (nested masks, one noise field),
image identity without the split (a test_day sweep equals the day rows of a test sweep), independence of
batch order, severity order and device, the counter-based stream's definition, and the Poisson sampler
(exact inverse CDF, chi-square against numpy's sampler)."""
import numpy as np
import pytest
import torch
from numpy_stream import np_bits, np_normal, np_symmetric, np_uniform
from scipy.stats import chi2_contingency
from scipy.stats import poisson as scipy_poisson

from rgbt_bench.batch import Batch, SampleMeta
from rgbt_bench.checkpoint import save_checkpoint
from rgbt_bench.corruptions import CORRUPTIONS, apply_corruption
from rgbt_bench.corruptions.cache import CACHE
from rgbt_bench.corruptions.fill import fill_value
from rgbt_bench.corruptions.poisson import SUM_MAX_RATE, poisson
from rgbt_bench.corruptions.stream import Draws
from rgbt_bench.datasets import open_dataset
from rgbt_bench.models.registry import build_model
from rgbt_bench.sweep.engine import SweepConfig, run_sweep
from rgbt_bench.sweep.store import read_cells

RANDOMIZED = sorted(n for n, c in CORRUPTIONS.items() if c.randomized)
# Corruptions that replace pixels by a fill colour: their masked sets must be nested across severities.
MASKING = sorted(n for n, c in CORRUPTIONS.items() if "fill" in c.options)
CPU = torch.device("cpu")


def make_batch(n: int, h: int = 48, w: int = 64, first: int = 0, split: str = "test") -> Batch:
    rgb, thermal = [], []
    for i in range(first, first + n):
        g = torch.Generator().manual_seed(7919 * i + 1)
        rgb.append(torch.rand(3, h, w, generator=g))
        thermal.append(torch.rand(1, h, w, generator=g))
    meta = [SampleMeta("fixture", split, f"img_{i}", i) for i in range(first, first + n)]
    return Batch(torch.stack(rgb), torch.stack(thermal), torch.zeros(n, h, w, dtype=torch.long), meta)


def options_for(name: str) -> dict:
    """Small patches so that a 48x64 image has 48 cells (5, 10, 15, 20, 24 masked at severities 1..5)."""
    return {"patch": 8} if "patch" in CORRUPTIONS[name].options else {}


def corrupt(batch: Batch, name: str, severity: int, seed: int = 5, **options) -> Batch:
    CACHE.clear()
    return apply_corruption(batch, name, severity, seed, **options_for(name), **options)


# ---- the stream ----------------------------------------------------------------------------------------

def test_stream_matches_its_documented_definition():
    meta = [SampleMeta("fixture", "test", f"s{i}", i) for i in range(3)]
    draws = Draws(meta, 11, "demo", CPU)
    bits = draws.bits("x", (5, 7))
    assert bits.dtype == torch.int32 and bits.shape == (3, 5, 7)
    for i, m in enumerate(meta):
        assert np.array_equal(bits[i].reshape(-1).numpy(), np_bits(11, "demo", "x", m.key, 35))
        assert np.array_equal(draws.symmetric("x", (35,))[i].double().numpy(), np_symmetric(11, "demo", "x", m.key, 35))
        assert np.array_equal(draws.uniform("x", (35,))[i].double().numpy(), np_uniform(11, "demo", "x", m.key, 35))
        np.testing.assert_allclose(draws.normal("x", (35,))[i].numpy(), np_normal(11, "demo", "x", m.key, 35),
                                   rtol=2e-6, atol=2e-6)
    # element i is the same number whatever the shape asked for; other draws and seeds are other numbers
    assert torch.equal(draws.bits("x", (40,))[:, :35], bits.view(3, 35))
    assert not torch.equal(draws.bits("y", (35,)), bits.view(3, 35))
    assert not torch.equal(Draws(meta, 12, "demo", CPU).bits("x", (35,)), bits.view(3, 35))


def test_stream_values_are_distinct_uniform_and_normal():
    draws = Draws([SampleMeta("fixture", "test", "big", 0)], 0, "demo", CPU)
    bits = draws.bits("x", (1 << 20,))[0]
    assert len(torch.unique(bits)) == 1 << 20  # a bijection of the counter
    u = draws.uniform("x", (1 << 20,))[0].double()
    assert 0 < float(u.min()) and float(u.max()) < 1
    counts = torch.histc(u, bins=64, min=0, max=1)
    expected = (1 << 20) / 64
    assert float(((counts - expected) ** 2 / expected).sum()) < 120  # chi-square, 63 dof (p ~ 1e-5)
    assert abs(float(torch.corrcoef(torch.stack([u[:-1], u[1:]]))[0, 1])) < 0.005  # neighbours uncorrelated
    z = draws.normal("x", (1 << 20,))[0].double()
    assert abs(float(z.mean())) < 0.005 and abs(float(z.std()) - 1) < 0.005
    assert abs(float((z.abs() > 3).double().mean()) - 0.0027) < 0.0003


def test_smallest_sets_are_nested_and_exact():
    draws = Draws([SampleMeta("fixture", "test", f"s{i}", i) for i in range(4)], 3, "demo", CPU)
    previous = torch.zeros(4, 100, dtype=torch.bool)
    for k in (0, 1, 10, 55, 99, 100):
        chosen = draws.smallest("cells", 100, k)
        assert chosen.sum(dim=1).tolist() == [k] * 4
        assert bool((chosen | ~previous).all())  # what was chosen for a smaller k stays chosen
        previous = chosen


# ---- common random numbers across severities ----------------------------------------------------------

@pytest.mark.parametrize("name", RANDOMIZED)
def test_random_numbers_do_not_depend_on_the_severity(name, monkeypatch):
    """Every number a corruption draws is a function of (seed, corruption, image): the same draws (names, shapes
    and values) at every severity. Covers any corruption added to the registry."""
    seen = []
    original = Draws._fill  # every draw (bits, uniform, normal, ...) is made here

    def recording(self, draw, shape, dtype, convert):
        out = original(self, draw, shape, dtype, convert)
        seen[-1].append((draw, tuple(shape), out.clone()))
        return out

    monkeypatch.setattr(Draws, "_fill", recording)
    batch = make_batch(3)
    for severity in range(1, 6):
        seen.append([])
        corrupt(batch, name, severity)
    assert seen[0], f"{name} draws nothing"
    for severity, calls in enumerate(seen[1:], start=2):
        assert [(d, s) for d, s, _ in calls] == [(d, s) for d, s, _ in seen[0]], severity
        assert all(torch.equal(a[2], b[2]) for a, b in zip(calls, seen[0])), severity


def missing_pixels(out: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """[B, H, W] True where any channel differs from the clean image."""
    return (out != clean).any(dim=1)


@pytest.mark.parametrize("name", MASKING)
def test_masked_sets_are_nested_across_severities(name):
    """For every image: what is missing at severity s is missing at s + 1. complementary_patch_mask: RGB's
    missing set grows, thermal loses exactly the complement, which therefore shrinks."""
    c = CORRUPTIONS[name]
    batch = make_batch(12)
    modalities = ("rgb", "thermal") if c.modality == "both" else (c.modality,)
    grows = "rgb" if c.modality == "both" else c.modality
    missing = []
    for s in range(1, 6):
        out = corrupt(batch, name, s, fill="mean")
        missing.append({m: missing_pixels(getattr(out, m), getattr(batch, m)) for m in modalities})
        for m in modalities:  # missing pixels hold the fill colour
            colour = fill_value(m, "mean", batch.rgb).expand_as(getattr(batch, m))
            assert torch.equal(getattr(out, m).masked_select(missing[-1][m][:, None]),
                               colour.masked_select(missing[-1][m][:, None]))
    for s in range(4):
        low, high = missing[s], missing[s + 1]
        assert bool((high[grows] | ~low[grows]).all()), f"severity {s + 1} -> {s + 2}"
        if c.modality == "both":
            assert bool((low["thermal"] | ~high["thermal"]).all())
            assert bool((low["rgb"] ^ low["thermal"]).all())  # each pixel missing from exactly one modality
    first, last = missing[0][grows], missing[-1][grows]
    assert bool(last.any()) and not bool(first.all())
    assert int(last.sum()) > int(first.sum())


def test_thermal_noise_is_one_field_scaled_by_the_severity():
    batch = make_batch(4)
    x = batch.thermal
    fields = []
    for s, sigma in zip(range(1, 6), (0.01, 0.02, 0.04, 0.06, 0.08)):
        y = corrupt(batch, "thermal_noise", s).thermal
        inside = (y > 0) & (y < 1)
        fields.append(((y - x) / sigma, inside))
    for field, inside in fields[1:]:
        both = inside & fields[0][1]
        torch.testing.assert_close(field[both], fields[0][0][both], atol=2e-4, rtol=0)


def test_thermal_stripes_are_one_pattern_scaled_by_the_severity():
    batch = make_batch(3)
    flat = Batch(batch.rgb, torch.full_like(batch.thermal, 0.5), batch.label, batch.meta)
    patterns = [(corrupt(flat, "thermal_stripes", s).thermal - 0.5) / std
                for s, std in zip(range(1, 6), (0.02, 0.035, 0.05, 0.065, 0.08))]
    for p in patterns[1:]:
        torch.testing.assert_close(p, patterns[0], atol=1e-4, rtol=0)


def test_night_gets_darker_pixel_by_pixel():
    """Lower light lowers every Poisson rate; with the same uniforms a lower rate never gives a higher count and the
    read noise is the same field, so every pixel is at most as bright at severity s + 1 as at s."""
    batch = make_batch(4)
    outs = [corrupt(batch, "night", s).rgb for s in range(1, 6)]
    for low, high in zip(outs, outs[1:]):
        assert bool((high <= low).all())
    assert float((outs[0] - outs[-1]).mean()) > 0.05


def test_plasma_fog_severities_share_their_fractal():
    """The maps of all severities come from the same draws: strongly correlated for one image (decays 2 vs 1.4),
    unlike two images' maps; c0 (1.5, 2, 2.5, 2.5, 3) and the decay only reshape the same fog."""
    batch = Batch(torch.zeros(2, 3, 96, 128), torch.zeros(2, 1, 96, 128), torch.zeros(2, 96, 128, dtype=torch.long),
                  [SampleMeta("fixture", "test", f"fog_{i}", i) for i in range(2)])
    batch.rgb[:, :, 0, 0] = 1.0  # peak 1: out = c0 * plasma / (1 + c0) elsewhere
    maps = [corrupt(batch, "plasma_fog", s).rgb[:, 0, 1:].flatten(1) for s in (1, 5)]
    same = torch.corrcoef(torch.stack([maps[0][0], maps[1][0]]))[0, 1]
    other = torch.corrcoef(torch.stack([maps[1][0], maps[1][1]]))[0, 1]
    assert float(same) > 0.9 and float(same) > float(other) + 0.3


# ---- image identity, evaluation order, device -----------------------------------------------------------

def test_the_split_is_not_part_of_an_image_identity():
    a, b = make_batch(3, split="test"), make_batch(3, split="test_day")
    assert a.meta[0].key == b.meta[0].key == "fixture/img_0"
    for name in RANDOMIZED:
        x, y = corrupt(a, name, 3), corrupt(b, name, 3)
        assert torch.equal(x.rgb, y.rgb) and torch.equal(x.thermal, y.thermal), name


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_results_do_not_depend_on_batch_order_or_severity_order(name):
    batch = make_batch(5)
    reverse = list(range(4, -1, -1))
    flipped = Batch(batch.rgb[reverse], batch.thermal[reverse], batch.label[reverse], [batch.meta[i] for i in reverse])
    CACHE.clear()
    forward = [apply_corruption(batch, name, s, 9, **options_for(name)) for s in range(1, 6)]
    CACHE.clear()
    backward = {s: apply_corruption(flipped, name, s, 9, **options_for(name)) for s in range(5, 0, -1)}
    for s, out in enumerate(forward, start=1):
        assert torch.equal(backward[s].rgb[reverse], out.rgb) and torch.equal(backward[s].thermal[reverse], out.thermal)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_cuda_matches_cpu(name):
    """Integer decisions (dropped images, masked cells, Poisson counts) are equal; float results within rounding."""
    batch = make_batch(4, 96, 128)
    for s in (1, 3, 5):
        cpu = corrupt(batch, name, s)
        gpu = corrupt(batch.to("cuda"), name, s)
        if name in MASKING:
            assert torch.equal(gpu.rgb.cpu(), cpu.rgb) and torch.equal(gpu.thermal.cpu(), cpu.thermal)
        else:
            torch.testing.assert_close(gpu.rgb.cpu(), cpu.rgb, atol=2e-5, rtol=0)
            torch.testing.assert_close(gpu.thermal.cpu(), cpu.thermal, atol=2e-5, rtol=0)
    rates = torch.linspace(0, 120, 200_000)
    v = Draws([SampleMeta("fixture", "test", "cuda", 0)], 0, "demo", CPU).symmetric("x", (200_000,))[0]
    assert torch.equal(poisson(rates.cuda(), v.cuda()).cpu(), poisson(rates, v))


def day_rows(cell, names: list[str]) -> np.ndarray:
    index = {n: i for i, n in enumerate(cell.names)}
    return cell.per_image[[index[n] for n in names]]


def test_a_test_day_sweep_equals_the_day_rows_of_a_test_sweep(tmp_path):
    """Through the real sweep: the same images with the same seed are corrupted identically whichever split
    lists them, so every cell of a test_day sweep equals the day subset of the test sweep's cell, bit for bit."""
    data = {"size": [32, 40], "counts": [4, 2, 10]}
    model = "user_model_example:build"
    torch.manual_seed(3)
    state = build_model(model, 7).state_dict()
    state["head.2.weight"] *= 20  # an untrained head predicts one class everywhere; this one follows the input
    checkpoint = str(save_checkpoint(tmp_path / "u.pt", {"model": model, "preset": "tiny", "num_classes": 7,
                                                        "config": {}, "state_dict": state}))
    suite = tmp_path / "suite.yaml"
    suite.write_text("entries:\n" + "".join(
        f"  - corruption: {name}\n    severities: [2, 4]\n" + ("    options: {patch: 8}\n" if "patch" in
                                                               CORRUPTIONS[name].options else "")
        for name in ("rgb_missing", "complementary_patch_mask", "rgb_pixel_missing", "plasma_fog", "night",
                     "thermal_noise", "thermal_stripes")))
    cells = {}
    for split in ("test", "test_day"):
        CACHE.clear()
        out = run_sweep(SweepConfig(models=[f"u={model}"], checkpoints={"u": checkpoint}, suite=str(suite),
                                    split=split, out=str(tmp_path / split), dataset_options=data, seeds=[0, 4],
                                    batch_size=3, device="cpu", progress=False))
        cells[split] = {(c.record.key.corruption, c.record.key.severity, c.record.key.seed): c for c in read_cells(out)}
    day = open_dataset("synthetic", "test_day", **data).names
    assert 0 < len(day) < len(open_dataset("synthetic", "test", **data).names)
    assert sorted(cells["test"]) == sorted(cells["test_day"]) and len(cells["test"]) == 1 + 7 * 2 * 2
    for key, cell in cells["test_day"].items():
        assert list(cell.names) == list(day)
        np.testing.assert_array_equal(cell.per_image, day_rows(cells["test"][key], day), err_msg=str(key))
    assert len({c.record.metrics["miou"] for c in cells["test_day"].values()}) > 5  # the cells do differ


# ---- Poisson sampler ----------------------------------------------------------------------------------

def grid_uniforms(n: int, seed: int) -> torch.Tensor:
    """n symmetric uniforms (v in (-1, 1), u = (v + 1) / 2) from the stream, as night draws them."""
    return Draws([SampleMeta("fixture", "test", f"poisson_{seed}", 0)], seed, "demo", CPU).symmetric("x", (n,))[0]


@pytest.mark.parametrize("rate", [0.05, 0.3, 1.0, 3.0, 7.5, 15.0, 40.0, 72.0, 120.0])
def test_poisson_matches_numpys_sampler_chi_square(rate):
    n = 200_000
    ours = poisson(torch.full((n,), rate), grid_uniforms(n, int(rate * 100))).numpy().astype(np.int64)
    theirs = np.random.default_rng(int(rate * 100)).poisson(rate, n)
    top = max(ours.max(), theirs.max()) + 1
    table = np.stack([np.bincount(ours, minlength=top), np.bincount(theirs, minlength=top)])
    # merge sparse tails into their neighbours so that every expected count is >= 5
    merged, acc = [], np.zeros(2, dtype=np.int64)
    for column in table.T:
        acc = acc + column
        if acc.sum() >= 20:
            merged.append(acc)
            acc = np.zeros(2, dtype=np.int64)
    if acc.sum():
        merged[-1] = merged[-1] + acc
    merged = np.array(merged).T
    if merged.shape[1] == 1:  # everything in one bin (tiny rate would need n larger): compare zero counts
        pytest.fail("rate too small for a chi-square test with this n")
    p = chi2_contingency(merged)[1]
    assert p > 1e-3, (rate, p)
    assert abs(ours.mean() - rate) < 5 * np.sqrt(rate / n) and abs(ours.var() / rate - 1) < 0.03


def test_poisson_is_the_exact_inverse_cdf():
    """Equal to scipy's Poisson quantile at the same uniform for random rates (0.01 .. SUM_MAX_RATE), uniforms at
    the extremes of the grid, and uniforms placed next to a CDF step (where an approximation would err)."""
    rng = np.random.default_rng(0)
    n = 300_000
    rates = np.exp(rng.uniform(np.log(0.01), np.log(SUM_MAX_RATE), n)).astype(np.float32)
    v = grid_uniforms(n, 1)
    extreme = (np.concatenate([np.arange(-2**22, -2**22 + 20), np.arange(2**22 - 20, 2**22)]) + 0.5) / 2**22
    rates = np.concatenate([rates, np.repeat(np.geomspace(0.05, 250, 500), 40).astype(np.float32)])
    v = np.concatenate([v.double().numpy(), np.tile(extreme, 500)])
    k = np.maximum(0, np.round(rates[:n] + np.sqrt(rates[:n]) * rng.normal(size=n) * 1.5))
    step = scipy_poisson.cdf(k, rates[:n].astype(np.float64))
    near = (np.clip(np.floor(step * 2**23 - 0.5) + rng.integers(-1, 2, n), 0, 2**23 - 1) + 0.5) / 2**23 * 2 - 1
    rates, v = np.concatenate([rates, rates[:n]]), np.concatenate([v, near])
    ours = poisson(torch.from_numpy(rates), torch.from_numpy(v).float()).numpy()
    expected = scipy_poisson.ppf((v + 1) / 2, rates.astype(np.float64))
    assert np.array_equal(ours, expected), int((ours != expected).sum())


def test_poisson_counts_grow_with_the_rate_for_a_fixed_uniform():
    v = grid_uniforms(20_000, 2)
    counts = torch.stack([poisson(torch.full((20_000,), r), v) for r in (0.0, 0.4, 2.0, 9.0, 9.5, 60.0, 300.0)])
    assert bool((counts[1:] >= counts[:-1]).all()) and bool((counts[0] == 0).all())
    big = poisson(torch.full((50_000,), 5000.0), grid_uniforms(50_000, 3)).double()  # gammaincc start
    assert abs(float(big.mean()) - 5000) < 5 * np.sqrt(5000 / 50_000) and abs(float(big.var()) / 5000 - 1) < 0.03
