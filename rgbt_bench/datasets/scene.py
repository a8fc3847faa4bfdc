"""Procedural RGB-thermal road scenes: the generator behind the `synthetic` dataset.

The scene is built so that each modality reveals something the other cannot (docs/synthetic.md):

- lane markings and colour cones exist only in RGB (paint and plastic at the road's temperature);
- hot pipes exist only in thermal (painted the colour of the wall they run along);
- posters are person-shaped cut-outs printed with a person's colours: RGB says "person", thermal says
  "nothing there", and the label is background;
- some persons wear clothes the colour of what is behind them: only their body heat gives them away;
- cars show in both (paint in RGB; hot wheels and exhaust in thermal).

At night the RGB camera sees a dark scene lit by a few street lamps, with heteroscedastic
(Poisson-Gaussian) sensor noise; the thermal camera works as by day.

Every image is a pure function of (seed, global index, size): its own numpy Generator draws all of its
parameters and noise in a fixed order, and images are rendered together in vectorised chunks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Bump whenever the rendered pixels change, so old caches are not reused.
GENERATOR_VERSION = 4

CLASS_NAMES = ("background", "road", "lane_marking", "car", "person", "color_cone", "hot_pipe")
BACKGROUND, ROAD, LANE, CAR, PERSON, CONE, PIPE = range(len(CLASS_NAMES))
# Cityscapes road colour, MFNet car / person / color_cone colours (MFNet palette), two of our own.
PALETTE = ((0, 0, 0), (128, 64, 128), (255, 255, 255), (64, 0, 128), (64, 64, 0), (192, 128, 128), (255, 128, 0))
# A one-pixel halo around every object ("thing") is ambiguous: thermal optics blur it. It is ignored.
IGNORE_INDEX = 255
THINGS = (CAR, PERSON, CONE, PIPE)
# Which camera shows each class (docs/synthetic.md; the contrast tests in tests/test_synthetic.py measure it):
# lane markings and cones have the temperature of the ground behind them, hot pipes the paint of their wall.
VISIBLE_IN = (("rgb", "thermal"), ("rgb", "thermal"), ("rgb",), ("rgb", "thermal"), ("rgb", "thermal"), ("rgb",),
              ("thermal",))

# What each pixel shows, finer than the label: tells posters and camouflaged persons apart for analysis.
ELEMENT_NAMES = ("sky", "building", "verge", "road", "lane_marking", "hot_pipe", "car", "person",
                 "camouflaged_person", "poster", "color_cone")
(E_SKY, E_BUILDING, E_VERGE, E_ROAD, E_LANE, E_PIPE, E_CAR, E_PERSON, E_CAMO, E_POSTER,
 E_CONE) = range(len(ELEMENT_NAMES))

# Object slots per image (each slot is present or not).
N_BUILDINGS, N_PIPES, N_CARS, N_PERSONS, N_POSTERS, N_CONES, N_LAMPS = 6, 2, 3, 4, 2, 3, 3
CHUNK = 64

CAR_COLOURS = np.array([[0.85, 0.85, 0.85], [0.08, 0.08, 0.09], [0.45, 0.46, 0.48], [0.68, 0.69, 0.70],
                        [0.70, 0.10, 0.10], [0.12, 0.20, 0.55], [0.15, 0.35, 0.20]], np.float32)


@dataclass
class Rendered:
    """A stack of rendered images as stored on disk: uint8 rgb [N,H,W,3], thermal, label, element [N,H,W]."""

    rgb: np.ndarray
    thermal: np.ndarray
    label: np.ndarray
    element: np.ndarray


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator that draws everything about image `index` of the dataset with `seed`."""
    return np.random.default_rng([seed, index])


def is_night_index(index: int) -> bool:
    """Odd global indices are night scenes, so every split is half day, half night."""
    return index % 2 == 1


def _draw(rng: np.random.Generator, night: bool, h: int, w: int) -> dict[str, np.ndarray]:
    """All random parameters and noise fields of one image, drawn in a fixed order."""
    aspect = w / h
    u = rng.uniform
    p: dict[str, np.ndarray] = {}
    p["night"] = np.float32(night)
    p["ambient"] = u(0.30, 0.40) if night else u(0.38, 0.48)
    # Road geometry: horizon row, vanishing point, half-width of the road at the bottom row.
    p["hz"] = u(0.36, 0.46)
    p["xv"] = aspect * u(0.35, 0.65)
    p["rw"] = aspect * u(0.45, 0.75)
    three = rng.random() < 0.5
    p["lanes"] = np.array([-1 / 3, 1 / 3] if three else [0.0, np.nan])
    p["lane_w"] = u(0.03, 0.045)
    p["dash_f"] = u(0.5, 0.8)
    p["dash_phase"] = u(0.0, 1.0)
    p["edge_lines"] = np.float32(rng.random() < 0.7)
    yellow = (not three) and rng.random() < 0.4
    p["lane_col"] = np.array([0.85, 0.72, 0.15] if yellow else [0.88, 0.88, 0.86]) * u(0.75, 1.0)
    grey = u(0.24, 0.42)
    p["road_col"] = grey + rng.normal(0, 0.015, 3)
    p["road_dt"] = u(0.02, 0.10) if night else u(0.08, 0.20)
    grass = rng.random(2) < 0.5
    side = np.array([[0.56, 0.53, 0.48], [0.26, 0.44, 0.20]])
    p["verge_col"] = side[grass.astype(int)] * u(0.8, 1.1, (2, 1))
    p["verge_dt"] = np.where(grass, -0.02, u(0.0, 0.05) if night else u(0.04, 0.12))
    overcast = rng.random() < 0.3
    p["sky_top"] = np.array([0.70, 0.72, 0.75] if overcast else [0.35, 0.55, 0.88]) * u(0.9, 1.05)
    p["sky_low"] = np.array([0.80, 0.81, 0.82] if overcast else [0.72, 0.80, 0.90]) * u(0.9, 1.05)
    p["sky_t"] = u(0.06, 0.15)
    # Buildings: inner boundaries along x, roof rows, colours, thermal offsets, windows.
    p["b_bounds"] = np.sort(u(0.0, aspect, N_BUILDINGS - 1))
    p["b_top"] = p["hz"] - u(0.18, 0.34, N_BUILDINGS)
    p["b_col"] = u(0.25, 0.75, (N_BUILDINGS, 1)) * u(0.8, 1.2, (N_BUILDINGS, 3))
    p["b_dt"] = u(-0.02, 0.06, N_BUILDINGS)
    p["win_f"] = u(22.0, 36.0, 2)
    p["win_off"] = u(0.0, 1.0, 2)
    p["win_lit"] = rng.random((16, 16)) < (0.35 if night else 0.0)
    # Hot pipes along walls: rectangles from 0.03 below the horizon up to 0.14 above it; roofs are >= 0.18 above.
    p["pipe_on"] = rng.random(N_PIPES) < 0.45
    horizontal = rng.random(N_PIPES) < 0.6
    th = u(0.025, 0.04, N_PIPES)
    y0 = p["hz"] - u(0.05, 0.10, N_PIPES) - th
    x0 = u(0.0, aspect - 0.3, N_PIPES)
    length = u(0.3, 0.9, N_PIPES)
    vy0 = p["hz"] - u(0.11, 0.14, N_PIPES)
    vx0 = u(0.0, aspect - 0.05, N_PIPES)
    p["pipe_box"] = np.stack([np.where(horizontal, y0, vy0), np.where(horizontal, y0 + th, p["hz"] - 0.03),
                              np.where(horizontal, x0, vx0), np.where(horizontal, x0 + length, vx0 + th)], -1)
    p["pipe_dt"] = u(0.25, 0.45, N_PIPES)
    # Cars on the road: contact row, lateral road coordinate, paint, thermal offsets.
    p["car_on"] = np.arange(N_CARS) < rng.integers(0, N_CARS + 1)
    p["car_yb"] = p["hz"] + u(0.15, 0.68, N_CARS)
    p["car_u"] = u(-0.75, 0.75, N_CARS)
    p["car_wr"] = u(1.4, 1.8, N_CARS)
    p["car_col"] = CAR_COLOURS[rng.integers(0, len(CAR_COLOURS), N_CARS)] * u(0.85, 1.1, (N_CARS, 1))
    p["car_dt"] = u(0.0, 0.05, N_CARS) if night else u(0.04, 0.12, N_CARS)
    p["car_hot"] = u(0.20, 0.35, N_CARS)
    # Persons anywhere on the ground; some camouflaged. Posters use the same body and clothing model.
    p["per_on"] = np.arange(N_PERSONS) < rng.integers(0, N_PERSONS + 1)
    p["per_yb"] = p["hz"] + u(0.15, 0.64, N_PERSONS)
    p["per_x"] = u(0.05, aspect - 0.05, N_PERSONS)
    p["per_camo"] = rng.random(N_PERSONS) < 0.3
    p["per_shirt"] = u(0.05, 0.9, (N_PERSONS, 3))
    p["per_pants"] = u(0.05, 0.5, (N_PERSONS, 1)) * u(0.7, 1.2, (N_PERSONS, 3))
    p["per_skin"] = u(0.35, 0.85, (N_PERSONS, 1)) * np.array([1.0, 0.78, 0.62])
    p["per_dt"] = u(0.20, 0.30, N_PERSONS)
    p["per_head_dt"] = u(0.30, 0.42, N_PERSONS)
    p["pos_on"] = rng.random(N_POSTERS) < 0.3
    p["pos_yb"] = p["hz"] + u(0.15, 0.64, N_POSTERS)
    p["pos_x"] = u(0.05, aspect - 0.05, N_POSTERS)
    p["pos_shirt"] = u(0.05, 0.9, (N_POSTERS, 3))
    p["pos_pants"] = u(0.05, 0.5, (N_POSTERS, 1)) * u(0.7, 1.2, (N_POSTERS, 3))
    p["pos_skin"] = u(0.35, 0.85, (N_POSTERS, 1)) * np.array([1.0, 0.78, 0.62])
    # Colour cones on the road.
    p["cone_on"] = np.arange(N_CONES) < rng.integers(0, N_CONES + 1)
    p["cone_yb"] = p["hz"] + u(0.15, 0.6, N_CONES)
    p["cone_u"] = u(-0.95, 0.95, N_CONES)
    p["cone_col"] = np.array([0.95, 0.42, 0.05]) * u(0.85, 1.05, (N_CONES, 1))
    # Lighting: smooth day illumination, or street lamps at night; RGB sensor gain and noise.
    p["brightness"] = u(0.85, 1.1)
    p["lamp_base"] = u(0.10, 0.18)
    p["lamp_xy"] = np.stack([u(0.0, aspect, N_LAMPS), p["hz"] + u(-0.3, 0.15, N_LAMPS)], -1)
    p["lamp_r"] = u(0.15, 0.3, N_LAMPS)
    p["lamp_a"] = u(0.2, 0.5, N_LAMPS) * (rng.random(N_LAMPS) < 0.8)
    # Noise fields: texture (low and mid frequency), illumination, thermal texture, sensor noise.
    p["tex_low"] = rng.standard_normal((6, 8))
    p["tex_mid"] = rng.standard_normal((max(2, h // 4), max(2, w // 4)))
    p["illum_low"] = rng.standard_normal((3, 4))
    p["therm_low"] = rng.standard_normal((5, 6))
    p["therm_mid"] = rng.standard_normal((max(2, h // 4), max(2, w // 4)))
    p["rgb_noise"] = rng.standard_normal((h, w, 3))
    p["therm_noise"] = rng.standard_normal((h, w))
    return {k: np.asarray(v, dtype=np.float32) if np.asarray(v).dtype != bool else np.asarray(v)
            for k, v in p.items()}


def _upsample(grid: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear upsampling of [N, gh, gw] noise grids to [N, H, W]."""
    t = torch.from_numpy(np.ascontiguousarray(grid, dtype=np.float32))[:, None]
    return F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[:, 0].numpy()


def _c(v: np.ndarray) -> np.ndarray:
    """Per-image values [N, ...] broadcast against [N, H, W] maps."""
    return v.reshape(v.shape[0], 1, 1, *v.shape[1:])


def _person_parts(X, Y, xc, yb, hgt):
    """Head, torso (with arms) and legs masks of a standing person seen from the front."""
    head = ((X - xc) / (0.075 * hgt)) ** 2 + ((Y - (yb - 0.9 * hgt)) / (0.09 * hgt)) ** 2 < 1
    torso = (np.abs(X - xc) < 0.15 * hgt) & (Y >= yb - 0.81 * hgt) & (Y < yb - 0.45 * hgt)
    dx = np.abs(X - xc)
    legs = (dx < 0.12 * hgt) & (dx > 0.015 * hgt) & (Y >= yb - 0.45 * hgt) & (Y < yb)
    return head, torso, legs


class _Canvas:
    """The layers of one chunk of images while they are being composed.

    Background "stuff" is painted per pixel. Objects only write a material id into an integer map,
    z-buffered by their ground-contact row (nearer objects are lower in the image); the materials'
    colours and temperatures are looked up once at the end, which keeps rendering fast.
    """

    def __init__(self, p: dict[str, np.ndarray], h: int, w: int):
        self.p, self.h, self.w = p, h, w
        n = p["hz"].shape[0]
        self.n = n
        self.rows = np.arange(n)
        self.Y = ((np.arange(h, dtype=np.float32) + 0.5) / h).reshape(1, h, 1)
        self.X = ((np.arange(w, dtype=np.float32) + 0.5) / h).reshape(1, 1, w)
        self.label = np.zeros((n, h, w), np.uint8)
        self.element = np.zeros((n, h, w), np.uint8)
        self.albedo = np.zeros((n, h, w, 3), np.float32)
        self.emissive = np.zeros((n, h, w, 3), np.float32)
        self.temp = np.zeros((n, h, w), np.float32)
        self.material = np.zeros((n, h, w), np.int16)
        self.depth = np.full((n, h, w), -1.0, np.float32)
        # Material 0 means "no object". NaN temperature means "as the background behind it".
        self.mat_albedo = [np.zeros((n, 3), np.float32)]
        self.mat_emissive = [np.zeros((n, 3), np.float32)]
        self.mat_temp = [np.zeros(n, np.float32)]
        self.mat_label = [np.zeros(n, np.uint8)]
        self.mat_element = [np.zeros(n, np.uint8)]

    def paint(self, mask, label, element, albedo=None, temp=None):
        """Overwrite background layers where `mask` holds (stuff and pipes)."""
        np.copyto(self.label, np.uint8(label), where=mask)
        np.copyto(self.element, np.uint8(element), where=mask)
        if albedo is not None:
            np.copyto(self.albedo, albedo, where=mask[..., None], casting="same_kind")
        if temp is not None:
            np.copyto(self.temp, temp, where=mask, casting="same_kind")

    def material_id(self, albedo, temp, label, element, emissive=None) -> int:
        """Register a per-image material (albedo [N,3], temp [N] or None, ids) and return its id."""
        n = self.n
        self.mat_albedo.append(np.broadcast_to(np.asarray(albedo, np.float32), (n, 3)))
        self.mat_emissive.append(np.zeros((n, 3), np.float32) if emissive is None
                                 else np.broadcast_to(np.asarray(emissive, np.float32), (n, 3)))
        self.mat_temp.append(np.full(n, np.nan, np.float32) if temp is None
                             else np.broadcast_to(np.asarray(temp, np.float32), (n,)))
        self.mat_label.append(np.broadcast_to(np.asarray(label, np.uint8), (n,)))
        self.mat_element.append(np.broadcast_to(np.asarray(element, np.uint8), (n,)))
        return len(self.mat_albedo) - 1

    def place(self, mask, parts, depth) -> None:
        """Put an object: `parts` is a material-id map (or one id), `depth` its [N,1,1] contact row."""
        mask = mask & (depth > self.depth)
        self.depth = np.where(mask, depth, self.depth)
        self.material = np.where(mask, np.asarray(parts, np.int16), self.material)

    def compose(self, stuff_temp: np.ndarray) -> None:
        """Replace the background by the objects' materials where objects were placed."""
        at = np.nonzero(self.material)
        key = (at[0], self.material[at])
        self.albedo[at] = np.stack(self.mat_albedo, 1)[key]
        self.emissive[at] = np.stack(self.mat_emissive, 1)[key]
        temp = np.stack(self.mat_temp, 1)[key]
        self.temp[at] = np.where(np.isnan(temp), stuff_temp[at], temp)
        self.label[at] = np.stack(self.mat_label, 1)[key]
        self.element[at] = np.stack(self.mat_element, 1)[key]


def _render_stuff(cv: _Canvas) -> None:
    """Sky, buildings (with windows), verges, road and lane markings."""
    p, X, Y, rows = cv.p, cv.X, cv.Y, cv.rows[:, None, None]
    hz, xv, amb, night = _c(p["hz"]), _c(p["xv"]), _c(p["ambient"]), _c(p["night"])
    below = Y > hz
    t = np.maximum((Y - hz) / (1 - hz), 1e-6)
    u = (X - xv) / (_c(p["rw"]) * t)
    road = below & (np.abs(u) < 1)
    # Sky: an emissive vertical gradient by day, almost black at night; thermally cold.
    s = np.clip(Y / hz, 0, 1)[..., None]
    sky_rgb = (1 - s) * _c(p["sky_top"]) + s * _c(p["sky_low"])
    sky_rgb = np.where(night[..., None] > 0, np.float32(0.04) * sky_rgb, sky_rgb)
    cv.emissive[:] = sky_rgb
    cv.temp[:] = _c(p["sky_t"]) + 0.05 * s[..., 0]
    cv.element[:] = E_SKY
    # Buildings: which building each column belongs to, its roof row and colour.
    idx = (X[..., None] > p["b_bounds"][:, None, None, :]).sum(-1)  # [N,1,W]
    top = p["b_top"][rows, idx]
    building = ~below & (Y > top)
    cv.paint(building, BACKGROUND, E_BUILDING, p["b_col"][rows, idx], amb + p["b_dt"][rows, idx])
    fx, fy = _c(p["win_f"][:, 0]), _c(p["win_f"][:, 1])
    ox, oy = _c(p["win_off"][:, 0]), _c(p["win_off"][:, 1])
    wx, wy = X * fx + ox, Y * fy + oy
    window = building & (wx % 1 < 0.5) & (wy % 1 < 0.55) & (Y > top + 0.03) & (Y < hz - 0.04)
    lit = window & p["win_lit"][rows, np.floor(wy).astype(int) % 16, np.floor(wx).astype(int) % 16]
    np.copyto(cv.albedo, np.float32([0.16, 0.2, 0.24]), where=window[..., None])
    np.copyto(cv.emissive, np.float32(0), where=building[..., None])
    np.copyto(cv.emissive, np.float32([0.8, 0.68, 0.38]), where=lit[..., None])
    cv.temp = np.where(lit, cv.temp + 0.03, np.where(window & (night == 0), cv.temp - 0.03, cv.temp))
    # Ground: verges left and right of the road, then the road with its own (sun-heated) temperature.
    left = (X < xv)[..., None]
    verge_col = np.where(left, _c(p["verge_col"][:, 0]), _c(p["verge_col"][:, 1]))
    verge_dt = np.where(X < xv, _c(p["verge_dt"][:, 0]), _c(p["verge_dt"][:, 1]))
    cv.paint(below & ~road, BACKGROUND, E_VERGE, verge_col, amb + verge_dt)
    np.copyto(cv.emissive, np.float32(0), where=below[..., None])
    cv.paint(road, ROAD, E_ROAD, _c(p["road_col"]), amb + _c(p["road_dt"]))
    # Lane markings: painted on the road in RGB only; the thermal layer keeps the road temperature.
    half_w = _c(p["lane_w"])
    centre = np.zeros_like(road)
    for k in range(p["lanes"].shape[1]):
        centre |= np.abs(u - _c(p["lanes"][:, k])) < half_w
    dashed = centre & ((_c(p["dash_f"]) / t + _c(p["dash_phase"])) % 1 < 0.5)
    au = np.abs(u)
    edge = (au > 0.9 - 2 * half_w) & (au < 0.9) & (_c(p["edge_lines"]) > 0)
    lane = road & (t > 0.2) & (dashed | edge)
    cv.paint(lane, LANE, E_LANE, _c(p["lane_col"]))


def _render_pipes(cv: _Canvas) -> None:
    """Hot pipes on building walls: thermal and label only, the RGB keeps the wall."""
    p, X, Y = cv.p, cv.X, cv.Y
    for k in range(N_PIPES):
        y0, y1, x0, x1 = (_c(p["pipe_box"][:, k, j]) for j in range(4))
        mask = (cv.element == E_BUILDING) & (Y >= y0) & (Y < y1) & (X >= x0) & (X < x1) & _c(p["pipe_on"][:, k])
        cv.paint(mask, PIPE, E_PIPE, temp=_c(p["ambient"] + p["pipe_dt"][:, k]))


def _render_cars(cv: _Canvas) -> None:
    """Cars seen from behind: body, cabin with dark window, wheels; hot wheels and exhaust in thermal."""
    p, X, Y = cv.p, cv.X, cv.Y
    hz, amb = p["hz"], p["ambient"]
    tail_glow = p["night"][:, None] * np.float32([0.9, 0.1, 0.06])
    for k in range(N_CARS):
        paint_col = p["car_col"][:, k]
        hot = amb + p["car_hot"][:, k]
        m_body = cv.material_id(paint_col, amb + p["car_dt"][:, k], CAR, E_CAR)
        m_window = cv.material_id([0.12, 0.14, 0.18], amb - 0.05, CAR, E_CAR)
        m_tail = cv.material_id([0.75, 0.06, 0.05], amb + p["car_dt"][:, k], CAR, E_CAR, tail_glow)
        m_wheel = cv.material_id([0.04, 0.04, 0.04], hot, CAR, E_CAR)
        m_exhaust = cv.material_id(paint_col, hot, CAR, E_CAR)
        yb = _c(p["car_yb"][:, k])
        hgt = 0.7 * (yb - _c(hz))
        w = _c(p["car_wr"][:, k]) * hgt
        xc = _c(p["xv"]) + _c(p["car_u"][:, k]) * _c(p["rw"]) * (yb - _c(hz)) / (1 - _c(hz))
        dx = np.abs(X - xc)
        body = (dx < w / 2) & (Y >= yb - 0.6 * hgt) & (Y < yb - 0.12 * hgt)
        cab_half = 0.33 * w + 0.12 * w * (Y - (yb - hgt)) / (0.4 * hgt)
        cabin = (dx < cab_half) & (Y >= yb - hgt) & (Y < yb - 0.6 * hgt)
        window = (dx < cab_half - 0.05 * w) & (Y >= yb - 0.93 * hgt) & (Y < yb - 0.62 * hgt)
        wheels = (dx > 0.28 * w) & (dx < 0.46 * w) & (Y >= yb - 0.18 * hgt) & (Y < yb)
        tail = (dx > 0.36 * w) & (dx < 0.48 * w) & (Y >= yb - 0.55 * hgt) & (Y < yb - 0.45 * hgt)
        exhaust = (np.abs(X - (xc - 0.3 * w)) < 0.05 * w) & (Y >= yb - 0.16 * hgt) & (Y < yb - 0.1 * hgt)
        parts = np.where(wheels, m_wheel, np.where(exhaust, m_exhaust, np.where(
            tail, m_tail, np.where(window, m_window, m_body))))
        cv.place((body | cabin | wheels) & _c(p["car_on"][:, k]), parts, yb)


def _mean_under(mask: np.ndarray, albedo: np.ndarray) -> np.ndarray:
    """Mean albedo [N,3] over each image's mask [N,H,W] (one batched matrix product)."""
    n = mask.shape[0]
    weights = mask.reshape(n, 1, -1).astype(np.float32)
    total = np.matmul(weights, albedo.reshape(n, -1, 3))[:, 0]
    return total / np.maximum(weights.sum(-1), 1)


def _render_people(cv: _Canvas, stuff_albedo: np.ndarray) -> None:
    """Persons (warm; some in clothes matching their background) and posters (cold person look-alikes)."""
    p, X, Y = cv.p, cv.X, cv.Y
    hz, amb = p["hz"], p["ambient"]
    for k in range(N_PERSONS):
        yb, xk = p["per_yb"][:, k], p["per_x"][:, k]
        hgt = 0.9 * (yb - hz)
        head, torso, legs = _person_parts(X, Y, _c(xk), _c(yb), _c(hgt))
        # Camouflage: clothes (and hood) take the mean colour of the surface behind upper body and legs.
        camo = p["per_camo"][:, k]
        shirt = np.where(camo[:, None], _mean_under(head | torso, stuff_albedo), p["per_shirt"][:, k])
        pants = np.where(camo[:, None], _mean_under(legs, stuff_albedo), p["per_pants"][:, k])
        element = np.where(camo, E_CAMO, E_PERSON)
        body_t = amb + p["per_dt"][:, k]
        head_col = np.where(camo[:, None], shirt, p["per_skin"][:, k])  # hooded
        m_head = cv.material_id(head_col, amb + p["per_head_dt"][:, k], PERSON, element)
        m_shirt = cv.material_id(shirt, body_t, PERSON, element)
        m_pants = cv.material_id(pants, body_t, PERSON, element)
        parts = np.where(head, m_head, np.where(torso, m_shirt, m_pants))
        cv.place((head | torso | legs) & _c(p["per_on"][:, k]), parts, _c(yb))
    for k in range(N_POSTERS):
        yb = p["pos_yb"][:, k]
        m_head = cv.material_id(p["pos_skin"][:, k], None, BACKGROUND, E_POSTER)
        m_shirt = cv.material_id(p["pos_shirt"][:, k], None, BACKGROUND, E_POSTER)
        m_pants = cv.material_id(p["pos_pants"][:, k], None, BACKGROUND, E_POSTER)
        head, torso, legs = _person_parts(X, Y, _c(p["pos_x"][:, k]), _c(yb), _c(0.9 * (yb - hz)))
        parts = np.where(head, m_head, np.where(torso, m_shirt, m_pants))
        cv.place((head | torso | legs) & _c(p["pos_on"][:, k]), parts, _c(yb))


def _render_cones(cv: _Canvas) -> None:
    """Orange cones with a white band, at the road's temperature (RGB only)."""
    p, X, Y = cv.p, cv.X, cv.Y
    hz = _c(p["hz"])
    for k in range(N_CONES):
        m_orange = cv.material_id(p["cone_col"][:, k], None, CONE, E_CONE)
        m_stripe = cv.material_id([0.9, 0.9, 0.88], None, CONE, E_CONE)
        yb = _c(p["cone_yb"][:, k])
        hgt = 0.55 * (yb - hz)
        xc = _c(p["xv"]) + _c(p["cone_u"][:, k]) * _c(p["rw"]) * (yb - hz) / (1 - hz)
        rel = (Y - (yb - hgt)) / hgt
        dx = np.abs(X - xc)
        body = (rel >= 0) & (rel < 0.9) & (dx < hgt * (0.06 + 0.22 * rel))
        base = (rel >= 0.9) & (rel < 1) & (dx < 0.4 * hgt)
        parts = np.where((rel >= 0.4) & (rel < 0.6), m_stripe, m_orange)
        cv.place((body | base) & _c(p["cone_on"][:, k]), parts, yb)


def _clamp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """In-place clip of a fresh temporary (np.clip is several times slower on large float32 arrays)."""
    return np.minimum(np.maximum(x, lo, out=x), hi, out=x)


def _sensors(cv: _Canvas) -> tuple[np.ndarray, np.ndarray]:
    """Texture, illumination and the two sensors: float RGB [N,H,W,3] and thermal [N,H,W] in [0,1]."""
    p, X, Y, h, w = cv.p, cv.X, cv.Y, cv.h, cv.w
    night = _c(p["night"])
    texture = 1 + 0.10 * _upsample(p["tex_low"], h, w) + 0.06 * _upsample(p["tex_mid"], h, w)
    albedo = cv.albedo * _clamp(texture, 0.6, 1.4)[..., None]
    day_light = _c(p["brightness"]) * (1 + 0.12 * _upsample(p["illum_low"], h, w))
    lamps = _c(p["lamp_base"]) + sum(
        _c(p["lamp_a"][:, k]) * np.exp(-((X - _c(p["lamp_xy"][:, k, 0])) ** 2 + (Y - _c(p["lamp_xy"][:, k, 1])) ** 2)
                                         / (2 * _c(p["lamp_r"][:, k]) ** 2))
        for k in range(N_LAMPS))
    light = np.where(night > 0, lamps, day_light)
    raw = _clamp(albedo * light[..., None] + cv.emissive, 0, 1)
    # Day: small Gaussian read noise. Night: Poisson-Gaussian (40 photo-electrons at full scale, read 0.015).
    sigma = np.where(night[..., None] > 0, np.sqrt(raw / 40 + 0.015 ** 2), np.float32(0.008))
    rgb = _clamp(raw + sigma * p["rgb_noise"], 0, 1)
    from scipy.ndimage import gaussian_filter  # here, not at the top: see _render_chunk

    temp = cv.temp + 0.025 * _upsample(p["therm_low"], h, w) + 0.01 * _upsample(p["therm_mid"], h, w)
    # Thermal optics are softer than RGB: blur by ~0.7 px at the native 120-row resolution.
    temp = gaussian_filter(temp, sigma=(0, 0.7 * h / 120, 0.7 * h / 120), mode="nearest")
    thermal = _clamp(temp + 0.008 * p["therm_noise"], 0, 1)
    return rgb, thermal


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.round(x * 255).astype(np.uint8)


def _render_chunk(params: list[dict[str, np.ndarray]], h: int, w: int) -> Rendered:
    # scipy.ndimage takes ~0.5 s to import, and most processes that import this module (every sweep worker,
    # any command on a real dataset) never render: it is imported on first use.
    from scipy.ndimage import maximum_filter

    p = {k: np.stack([q[k] for q in params]) for k in params[0]}
    cv = _Canvas(p, h, w)
    _render_stuff(cv)
    stuff_temp = cv.temp.copy()
    _render_pipes(cv)
    _render_cars(cv)
    _render_people(cv, cv.albedo)
    _render_cones(cv)
    cv.compose(stuff_temp)
    things = np.isin(cv.label, THINGS)
    halo = maximum_filter(things, size=(1, 3, 3), mode="constant") & ~things
    label = np.where(halo, np.uint8(IGNORE_INDEX), cv.label)
    rgb, thermal = _sensors(cv)
    return Rendered(_to_uint8(rgb), _to_uint8(thermal), label, cv.element)


def render(indices: list[int] | range, size: tuple[int, int], seed: int) -> Rendered:
    """Render the images with these global indices at size (H, W); image i depends only on (seed, i, size)."""
    h, w = size
    parts = []
    indices = list(indices)
    for start in range(0, len(indices), CHUNK):
        chunk = indices[start:start + CHUNK]
        params = [_draw(image_rng(seed, i), is_night_index(i), h, w) for i in chunk]
        parts.append(_render_chunk(params, h, w))
    if not parts:
        empty = np.zeros((0, h, w), np.uint8)
        return Rendered(np.zeros((0, h, w, 3), np.uint8), empty, empty.copy(), empty.copy())
    return Rendered(*(np.concatenate([getattr(r, f) for r in parts]) for f in ("rgb", "thermal", "label", "element")))
