"""Procedural synthetic street scenes: multi-instance driving frames in miniature, with dense labels.

Each scene is rendered through a pinhole camera 1.4-1.8 m above a flat ground plane, so every object's size
and position follow from its 3-D placement: farther objects are smaller and sit nearer the horizon. A scene has
a sky gradient, distant skyline, buildings with windows on both sides, a road with lanes, lane marks and
sometimes a crosswalk, sidewalks, cars (body, cabin, glass, lights, wheels), pedestrians (head, torso, arms,
legs), poles (street lights, signs) and trees, then a random global lighting (brightness, contrast, tint) and
sensor noise. Everything is drawn with OpenCV polygons and circles on the image, the semantic mask and the
instance mask at once, so the three always agree.

Determinism: :func:`generate_scene` draws every random number from ``numpy.random.default_rng(seed)``, so one
seed gives byte-identical arrays on every run; :func:`scene_seed` derives the per-image seed of a dataset from
``(base seed, split, index)``. The layout written by :func:`write_synthetic_dataset` is documented in
``docs/synthetic_data.md``.
"""
import json
import os
import os.path as osp
import re
import time
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

CLASSES = ('road', 'sidewalk', 'building', 'sky', 'vegetation', 'pole', 'car', 'person')
# Cityscapes colours of the same classes (RGB).
PALETTE = ((128, 64, 128), (244, 35, 232), (70, 70, 70), (70, 130, 180), (107, 142, 35), (153, 153, 153),
           (0, 0, 142), (220, 20, 60))
ROAD, SIDEWALK, BUILDING, SKY, VEGETATION, POLE, CAR, PERSON = range(len(CLASSES))
THING_CLASSES = ('pole', 'car', 'person')
IGNORE_INDEX = 255  # reserved for evaluation; the generator labels every pixel
SPLITS = ('train', 'val')
DEFAULT_WIDTH, DEFAULT_HEIGHT = 320, 224
JPEG_QUALITY = 95
GENERATOR_VERSION = 1  # recorded in meta.json; bump when the rendering changes

_SHIFT = 4  # sub-pixel bits for cv2 drawing
_ONE = 1 << _SHIFT
_Z_MIN = 1.0  # near clipping depth of buildings and objects (m)
_Z_FAR = 2000.0  # far end of the ground planes (m), a fraction of a pixel below the horizon
_FILE_NAME = re.compile(r'^\d{6}\.(jpg|png)$')

Colour = Tuple[int, int, int]


@dataclass(frozen=True)
class _Camera:
    """Pinhole camera at lateral x=0, looking down +z, ``height`` metres above the ground (y=0)."""

    focal: float
    cx: float
    horizon: float
    height: float

    def project(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Pixel coordinates (..., 2) of 3-D points (x lateral, y up, z depth; metres)."""
        u = self.cx + self.focal * np.asarray(x, np.float64) / z
        v = self.horizon + self.focal * (self.height - np.asarray(y, np.float64)) / z
        return np.stack(np.broadcast_arrays(u, v), axis=-1)

    def point(self, x: float, y: float, z: float) -> Tuple[float, float]:
        """Pixel coordinates of one 3-D point."""
        return self.cx + self.focal * x / z, self.horizon + self.focal * (self.height - y) / z


@dataclass(frozen=True)
class _Street:
    """Lateral layout of the street (metres; the camera drives in the centre of one lane)."""

    lanes: Tuple[Tuple[float, int], ...]  # (centre x, +1 same direction / -1 oncoming)
    left_edge: float
    right_edge: float
    sidewalk: float
    centre_line: float  # x of the line between the two directions (only drawn when there is oncoming traffic)


class _Canvas:
    """Image (RGB), semantic mask and instance mask, drawn together."""

    def __init__(self, width: int, height: int) -> None:
        self.img = np.zeros((height, width, 3), np.uint8)
        self.sem = np.full((height, width), SKY, np.uint8)
        self.inst = np.zeros((height, width), np.uint16)
        self.next_id = 1

    def fill(self, polys: np.ndarray, colour: Colour, cls: int, inst: int = 0) -> None:
        """Fill polygons (n, k, 2) in pixels with ``colour`` and label them ``cls`` / ``inst``."""
        pts = _to_fixed(polys)
        cv2.fillPoly(self.img, pts, colour, cv2.LINE_8, _SHIFT)
        cv2.fillPoly(self.sem, pts, cls, cv2.LINE_8, _SHIFT)
        cv2.fillPoly(self.inst, pts, inst, cv2.LINE_8, _SHIFT)

    def paint(self, polys: np.ndarray, colour: Colour) -> None:
        """Fill polygons on the image only: details (windows, marks, lights) that keep the label underneath."""
        cv2.fillPoly(self.img, _to_fixed(polys), colour, cv2.LINE_8, _SHIFT)

    def disc(self, centre: Tuple[float, float], radius: float, colour: Colour, cls: int, inst: int = 0) -> None:
        """Fill a disc (centre and radius in pixels)."""
        self.ellipse(centre, (radius, radius), colour, cls, inst)

    def ellipse(self, centre: Tuple[float, float], axes: Tuple[float, float], colour: Colour, cls: int,
                inst: int = 0) -> None:
        """Fill an axis-aligned ellipse (centre and half-axes in pixels)."""
        c = (int(round(centre[0] * _ONE)), int(round(centre[1] * _ONE)))
        ax = (max(int(round(axes[0] * _ONE)), 1), max(int(round(axes[1] * _ONE)), 1))
        for target, value in ((self.img, colour), (self.sem, cls), (self.inst, inst)):
            cv2.ellipse(target, c, ax, 0, 0, 360, value, -1, cv2.LINE_8, _SHIFT)

    def new_instance(self) -> int:
        """A fresh instance id (ids of fully hidden instances are dropped later by :func:`_compact_ids`)."""
        self.next_id += 1
        return self.next_id - 1


def _to_fixed(polys: np.ndarray) -> List[np.ndarray]:
    """Polygons (n, k, 2) in pixels -> cv2 fixed-point int32 polygons."""
    return list(np.round(np.asarray(polys) * _ONE).astype(np.int32))


def _rgb(colour: Sequence[float]) -> Colour:
    """A cv2 colour tuple from any RGB triple, clipped to 0..255."""
    return tuple(min(max(int(round(float(c))), 0), 255) for c in colour)


def _jitter(rng: np.random.Generator, colour: Sequence[float], amount: float) -> Colour:
    """``colour`` with independent uniform noise of ±``amount`` per channel."""
    return _rgb(np.asarray(colour, np.float64) + rng.uniform(-amount, amount, 3))


def _shade(colour: Sequence[float], factor: float) -> Colour:
    """``colour`` scaled by ``factor`` (darker below 1)."""
    return _rgb(np.asarray(colour, np.float64) * factor)


def _pixels(cam: _Camera, points: Sequence[Tuple[float, float, float]]) -> np.ndarray:
    """One polygon of 3-D points (x, y, z) -> (1, k, 2) pixels (plain Python: cheaper than numpy for a few points)."""
    f, cx, horizon, h = cam.focal, cam.cx, cam.horizon, cam.height
    return np.array([[(cx + f * x / z, horizon + f * (h - y) / z) for x, y, z in points]])


def _front_rect(cam: _Camera, z: float, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """The rectangle [x0, x1] × [y0, y1] facing the camera at depth ``z`` -> (1, 4, 2) pixels."""
    return _pixels(cam, ((x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)))


def _front_poly(cam: _Camera, z: float, points: Sequence[Tuple[float, float]]) -> np.ndarray:
    """A polygon of (x, y) points facing the camera at depth ``z`` -> (1, k, 2) pixels."""
    return _pixels(cam, [(x, y, z) for x, y in points])


def _corners(a0, a1, b0, b1) -> Tuple[np.ndarray, np.ndarray]:
    """Per-corner coordinates (n, 4) of the rectangles [a0, a1] × [b0, b1] (scalars or (n,) arrays)."""
    a0, a1, b0, b1 = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, np.float64)) for v in (a0, a1, b0, b1)))
    return np.stack((a0, a1, a1, a0), axis=-1), np.stack((b0, b0, b1, b1), axis=-1)


def _ground_quads(cam: _Camera, x0, x1, z0, z1) -> np.ndarray:
    """Ground rectangles [x0, x1] × [z0, z1] (scalars or (n,) arrays) -> (n, 4, 2) pixels."""
    x, z = _corners(x0, x1, z0, z1)
    return cam.project(x, 0.0, z)


def _facade_quads(cam: _Camera, x: float, y0, y1, z0, z1) -> np.ndarray:
    """Rectangles [y0, y1] × [z0, z1] on the vertical plane at lateral ``x`` -> (n, 4, 2) pixels."""
    z, y = _corners(z0, z1, y0, y1)
    return cam.project(x, y, z)


def _log_uniform(rng: np.random.Generator, low: float, high: float, size=None):
    """Samples whose logarithm is uniform: as many objects per octave of distance, near or far."""
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def _sample_camera(rng: np.random.Generator, width: int, height: int) -> _Camera:
    """Focal length, principal point, horizon row and mounting height of the camera."""
    return _Camera(focal=width * rng.uniform(0.75, 0.95), cx=width * rng.uniform(0.44, 0.56),
                   horizon=height * rng.uniform(0.38, 0.5), height=rng.uniform(1.4, 1.8))


def _sample_street(rng: np.random.Generator) -> _Street:
    """Lanes in both directions, lane width, road edges and sidewalk width."""
    n_same, n_oncoming = int(rng.integers(1, 3)), int(rng.integers(0, 3))
    ego = int(rng.integers(0, n_same))
    lane_width = rng.uniform(3.0, 3.7)
    centre_line = -(ego + 0.5) * lane_width
    lanes = tuple([((i - ego) * lane_width, 1) for i in range(n_same)]
                  + [(centre_line - (i + 0.5) * lane_width, -1) for i in range(n_oncoming)])
    parking = rng.uniform(0.0, 2.2, 2) * (rng.random(2) < 0.5)
    return _Street(lanes=lanes, left_edge=centre_line - n_oncoming * lane_width - parking[0],
                   right_edge=centre_line + n_same * lane_width + parking[1], sidewalk=rng.uniform(2.0, 5.0),
                   centre_line=centre_line)


def _draw_sky(canvas: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Vertical sky gradient over the whole image (day, overcast or dusk); returns the horizon colour."""
    skies = (((60, 110, 190), (175, 205, 235)), ((120, 125, 135), (190, 192, 198)), ((70, 80, 140), (235, 160, 110)))
    top, bottom = (np.array(c, np.float64) + rng.uniform(-15, 15, 3) for c in skies[int(rng.integers(0, len(skies)))])
    t = np.linspace(0.0, 1.0, canvas.img.shape[0])[:, None, None]
    canvas.img[:] = np.clip(top + (bottom - top) * t, 0, 255).astype(np.uint8)
    return bottom


def _draw_ground(canvas: _Canvas, cam: _Camera, street: _Street, rng: np.random.Generator) -> float:
    """Grass below the horizon, sidewalks with curbs and the road; returns the nearest visible depth (m)."""
    height = canvas.img.shape[0]
    z_near = cam.focal * cam.height / (height + 4 - cam.horizon)
    row = max(int(np.ceil(cam.horizon)), 0)
    canvas.img[row:] = _jitter(rng, (80, 110, 50), 20)
    canvas.sem[row:] = VEGETATION
    sidewalk = _jitter(rng, (165, 160, 150), 20)
    curb = _shade(sidewalk, 1.15)
    left, right, walk = street.left_edge, street.right_edge, street.sidewalk
    canvas.fill(_ground_quads(cam, [left - walk, right], [left, right + walk], z_near, _Z_FAR), sidewalk, SIDEWALK)
    canvas.fill(_ground_quads(cam, [left - 0.25, right], [left, right + 0.25], z_near, _Z_FAR), curb, SIDEWALK)
    asphalt = rng.uniform(70, 115)
    canvas.fill(_ground_quads(cam, left, right, z_near, _Z_FAR), _jitter(rng, (asphalt,) * 3, 6), ROAD)
    return z_near


def _draw_lane_marks(canvas: _Canvas, cam: _Camera, street: _Street, rng: np.random.Generator, z_near: float) -> None:
    """Dashed lane lines, centre line, edge lines and sometimes a crosswalk (image only: they stay road)."""
    white = _jitter(rng, (225, 225, 220), 15)
    half = rng.uniform(0.06, 0.09)
    same = sorted(x for x, d in street.lanes if d > 0)
    oncoming = sorted(x for x, d in street.lanes if d < 0)
    dashed = [(a + b) / 2 for lanes in (same, oncoming) for a, b in zip(lanes[:-1], lanes[1:])]
    period, length = rng.uniform(8.0, 12.0), rng.uniform(2.5, 4.0)
    z0 = z_near + rng.uniform(0.0, period) + np.arange(0.0, 150.0, period)
    for x in dashed:
        canvas.paint(_ground_quads(cam, x - half, x + half, z0, z0 + length), white)
    if oncoming:
        yellow = _jitter(rng, (220, 180, 40), 15)
        lines = [street.centre_line - 0.15, street.centre_line + 0.15] if rng.random() < 0.6 else [street.centre_line]
        canvas.paint(_ground_quads(cam, np.array(lines) - half, np.array(lines) + half, z_near, _Z_FAR), yellow)
    if rng.random() < 0.7:
        edges = np.array([street.left_edge + 0.3, street.right_edge - 0.3])
        canvas.paint(_ground_quads(cam, edges - half, edges + half, z_near, _Z_FAR), white)
    if rng.random() < 0.3:
        z = rng.uniform(10.0, 35.0)
        x = np.arange(street.left_edge + 0.3, street.right_edge - 0.6, 1.0)
        canvas.paint(_ground_quads(cam, x, x + 0.5, z, z + rng.uniform(2.5, 4.0)), white)


def _draw_skyline(canvas: _Canvas, cam: _Camera, rng: np.random.Generator, haze: np.ndarray) -> None:
    """Distant hazy buildings and tree lines standing on the horizon."""
    n = int(rng.integers(6, 16))
    z = np.sort(rng.uniform(150.0, 300.0, n))[::-1]
    x = rng.uniform(-140.0, 140.0, n)
    w, h = rng.uniform(8.0, 35.0, n), rng.uniform(6.0, 45.0, n)
    for i in range(n):
        grey = rng.uniform(70, 170)
        colour = _rgb(0.5 * haze + 0.5 * (np.array((grey,) * 3) + rng.uniform(-15, 15, 3)))
        canvas.fill(_front_rect(cam, z[i], x[i] - w[i] / 2, x[i] + w[i] / 2, 0.0, h[i]), colour, BUILDING)
    if rng.random() < 0.5:
        green = _rgb(0.4 * haze + 0.6 * np.array(_jitter(rng, (60, 95, 45), 15)))
        z_trees = rng.uniform(120.0, 150.0)
        for x_tree in rng.uniform(-150.0, 150.0, int(rng.integers(5, 20))):
            centre = cam.point(x_tree, 4.0, z_trees)
            canvas.disc(centre, cam.focal * rng.uniform(3.0, 7.0) / z_trees, green, VEGETATION)


def _draw_building(canvas: _Canvas, cam: _Camera, rng: np.random.Generator, x: float, z0: float, z1: float,
                   height: float, light: float) -> None:
    """One building on the side of ``x`` (sign): facade from ``z0`` to ``z1`` with windows, and its front face."""
    side = np.sign(x)
    colour = _jitter(rng, [(150, 140, 130), (120, 110, 100), (180, 170, 150), (110, 115, 125), (160, 100, 80)][
        int(rng.integers(0, 5))], 20)
    if z0 >= _Z_MIN:
        x_back = x + side * rng.uniform(8.0, 20.0)
        canvas.fill(_front_rect(cam, z0, min(x, x_back), max(x, x_back), 0.0, height), _shade(colour, 0.75 * light),
                    BUILDING)
    z0 = max(z0, _Z_MIN)
    canvas.fill(_facade_quads(cam, x, 0.0, height, z0, z1), _shade(colour, light), BUILDING)
    if rng.random() < 0.1:
        return
    floor, pitch = rng.uniform(2.8, 3.8), rng.uniform(2.2, 4.5)
    rows = np.arange(rng.uniform(1.0, 2.0), height - 1.0, floor)
    cols = np.arange(z0 + rng.uniform(0.3, pitch), z1 - 0.8, pitch)
    if rows.size == 0 or cols.size == 0:
        return
    wy, wz = np.meshgrid(rows, cols, indexing='ij')
    wy, wz = wy.ravel(), wz.ravel()
    win_h, win_w = floor * rng.uniform(0.4, 0.65), pitch * rng.uniform(0.35, 0.7)
    visible = cam.focal * win_h / (wz + win_w) >= 1.0
    lit = rng.random(wy.size) < rng.uniform(0.0, 0.4)
    glass = _jitter(rng, (50, 60, 75), 15)
    for mask, tone in ((visible & ~lit, glass), (visible & lit, _jitter(rng, (215, 200, 150), 25))):
        if mask.any():
            canvas.paint(_facade_quads(cam, x, wy[mask], wy[mask] + win_h, wz[mask], wz[mask] + win_w), tone)


def _draw_buildings(canvas: _Canvas, cam: _Camera, street: _Street, rng: np.random.Generator) -> None:
    """Rows of buildings along both sidewalks, painted far to near; one side is in the shade.

    The district varies from dense downtown (tall, few gaps) to suburb (low, set back, many gaps).
    """
    sun = rng.choice((-1.0, 1.0))
    max_height, gaps, max_setback = rng.uniform(8.0, 30.0), rng.uniform(0.1, 0.5), rng.uniform(0.5, 8.0)
    blocks = []
    for side, edge in ((-1.0, street.left_edge), (1.0, street.right_edge)):
        z = rng.uniform(-6.0, 4.0)
        while z < 160.0:
            length = rng.uniform(8.0, 30.0)
            if rng.random() < gaps:
                z += rng.uniform(4.0, 15.0)
                continue
            x = edge + side * (street.sidewalk + rng.uniform(0.0, max_setback))
            blocks.append((z, z + length, x, max_height * rng.uniform(0.4, 1.0), 1.0 if side == sun else 0.7))
            z += length
    for z0, z1, x, height, light in sorted(blocks, key=lambda b: -b[0]):
        if z1 > _Z_MIN:
            _draw_building(canvas, cam, rng, x, z0, z1, height, light)


def _car_colour(rng: np.random.Generator) -> Colour:
    """A typical car paint."""
    palette = ((200, 200, 205), (30, 30, 35), (120, 125, 130), (160, 30, 30), (30, 60, 140), (235, 235, 235),
               (60, 90, 60), (200, 170, 60))
    return _jitter(rng, palette[int(rng.integers(0, len(palette)))], 15)


def _draw_car(canvas: _Canvas, cam: _Camera, rng: np.random.Generator, x: float, z: float, direction: int) -> None:
    """A car whose nearest face (rear if ``direction`` > 0, front otherwise) is at depth ``z``, centred at ``x``."""
    inst = canvas.new_instance()
    half, length = rng.uniform(0.85, 1.0), rng.uniform(3.9, 5.0)
    height = rng.uniform(1.8, 2.2) if rng.random() < 0.2 else rng.uniform(1.35, 1.6)
    body, glass, tyre = _car_colour(rng), _jitter(rng, (40, 50, 60), 10), _jitter(rng, (25, 25, 25), 5)
    waist, wheel = 0.6 * height, 0.33
    canvas.paint(_ground_quads(cam, x - half - 0.15, x + half + 0.15, z - 0.2, z + length), (40, 40, 42))
    side = x - half if x - half > 0 else (x + half if x + half < 0 else None)
    if side is not None:
        canvas.fill(_facade_quads(cam, side, 0.25, waist, z, z + length), _shade(body, 0.8), CAR, inst)
        cabin = np.array([(waist, z + 0.15 * length), (height, z + 0.3 * length), (height, z + 0.75 * length),
                          (waist, z + 0.9 * length)])
        canvas.fill(cam.project(side, cabin[:, 0], cabin[:, 1])[None], _shade(body, 0.8), CAR, inst)
        canvas.paint(cam.project(side, cabin[:, 0] * 0.95 + 0.04 * height, cabin[:, 1])[None], _shade(glass, 1.2))
        for zw in (z + 0.18 * length, z + 0.82 * length):
            (u0, _), (u1, _) = cam.point(side, wheel, zw - wheel), cam.point(side, wheel, zw + wheel)
            axes = (abs(u1 - u0) / 2, cam.focal * wheel / zw)  # seen obliquely: narrower than tall
            canvas.ellipse(cam.point(side, wheel, zw), axes, tyre, CAR, inst)
    for x0 in (x - half + 0.05, x + half - 0.35):
        canvas.fill(_front_rect(cam, z, x0, x0 + 0.3, 0.0, 0.4), tyre, CAR, inst)
    canvas.fill(_front_rect(cam, z, x - half, x + half, 0.25, waist), body, CAR, inst)
    cabin = [(x - 0.9 * half, waist), (x + 0.9 * half, waist), (x + 0.7 * half, height), (x - 0.7 * half, height)]
    canvas.fill(_front_poly(cam, z, cabin), body, CAR, inst)
    window = [(x - 0.8 * half, waist + 0.05), (x + 0.8 * half, waist + 0.05), (x + 0.64 * half, height - 0.08),
              (x - 0.64 * half, height - 0.08)]
    canvas.paint(_front_poly(cam, z, window), glass)
    lamp = (220, 30, 30) if direction > 0 else (245, 240, 200)
    for x0 in (x - half + 0.08, x + half - 0.33):
        canvas.paint(_front_rect(cam, z, x0, x0 + 0.25, waist - 0.3, waist - 0.12), lamp)
    canvas.paint(_front_rect(cam, z, x - 0.25, x + 0.25, 0.35, 0.47), (230, 230, 220))


def _draw_person(canvas: _Canvas, cam: _Camera, rng: np.random.Generator, x: float, z: float) -> None:
    """A pedestrian standing at (``x``, ``z``): legs, torso, arms and head, proportional to a random height."""
    inst = canvas.new_instance()
    h = rng.uniform(1.0, 1.3) if rng.random() < 0.1 else rng.uniform(1.55, 1.95)
    shirt, pants = _jitter(rng, rng.uniform(30, 220, 3), 0), _jitter(rng, rng.uniform(20, 120, 3), 0)
    skin = _jitter(rng, [(235, 195, 165), (190, 140, 100), (120, 80, 55)][int(rng.integers(0, 3))], 10)
    hip, shoulder, half = 0.5 * h, 0.82 * h, 0.12 * h
    stride, swing = rng.uniform(0.0, 0.2) * h, rng.uniform(-0.08, 0.08) * h
    for s in (-1.0, 1.0):
        leg = [(x + s * 0.01 * h, hip), (x + s * 0.08 * h, hip), (x + s * (0.04 * h + stride / 2) + 0.035 * h, 0.0),
               (x + s * (0.04 * h + stride / 2) - 0.035 * h, 0.0)]
        canvas.fill(_front_poly(cam, z, leg), pants, PERSON, inst)
        arm = [(x + s * half, shoulder), (x + s * (half + 0.05 * h), shoulder - 0.02 * h),
               (x + s * (half + 0.04 * h) + s * swing, 0.45 * h), (x + s * half + s * swing, 0.45 * h)]
        canvas.fill(_front_poly(cam, z, arm), shirt, PERSON, inst)
    torso = [(x - 0.9 * half, hip), (x + 0.9 * half, hip), (x + half, shoulder), (x - half, shoulder)]
    canvas.fill(_front_poly(cam, z, torso), shirt, PERSON, inst)
    canvas.fill(_front_rect(cam, z, x - 0.025 * h, x + 0.025 * h, shoulder, shoulder + 0.04 * h), skin, PERSON, inst)
    radius = 0.065 * h
    canvas.disc(cam.point(x, shoulder + 0.035 * h + radius, z), cam.focal * radius / z, skin, PERSON, inst)


def _draw_pole(canvas: _Canvas, cam: _Camera, rng: np.random.Generator, x: float, z: float) -> None:
    """A pole at (``x``, ``z``), often with a street-light arm over the road or a sign (all labelled pole)."""
    inst = canvas.new_instance()
    half, height = rng.uniform(0.06, 0.11), rng.uniform(4.0, 9.0)
    metal = _jitter(rng, (110, 110, 115), 25)
    canvas.fill(_front_rect(cam, z, x - half, x + half, 0.0, height), metal, POLE, inst)
    toward_road = -np.sign(x)
    if rng.random() < 0.6:
        reach = x + toward_road * rng.uniform(1.0, 2.5)
        canvas.fill(_front_rect(cam, z, min(x, reach), max(x, reach), height - 2 * half, height), metal, POLE, inst)
        canvas.fill(_front_rect(cam, z, reach - 0.25, reach + 0.25, height - 0.25, height), metal, POLE, inst)
    elif rng.random() < 0.6:
        sign = [(210, 30, 30), (30, 70, 170), (230, 190, 30)][int(rng.integers(0, 3))]
        size, y = rng.uniform(0.3, 0.45), rng.uniform(2.0, 2.8)
        if rng.random() < 0.5:
            canvas.disc(cam.point(x, y, z), cam.focal * size / z, sign, POLE, inst)
        else:
            canvas.fill(_front_rect(cam, z, x - size, x + size, y - size, y + size), sign, POLE, inst)


def _draw_tree(canvas: _Canvas, cam: _Camera, rng: np.random.Generator, x: float, z: float) -> None:
    """A tree at (``x``, ``z``): trunk and a crown of overlapping discs (vegetation, no instance)."""
    trunk_h, radius = rng.uniform(1.8, 3.5), rng.uniform(1.2, 3.0)
    canvas.fill(_front_rect(cam, z, x - 0.15, x + 0.15, 0.0, trunk_h + radius), _jitter(rng, (90, 65, 45), 15),
                VEGETATION)
    leaves = np.array(_jitter(rng, (60, 110, 45), 20), np.float64)
    for dx, dy, r in zip(rng.uniform(-0.5, 0.5, 4), rng.uniform(-0.3, 0.5, 4), rng.uniform(0.55, 0.8, 4)):
        centre = cam.point(x + dx * radius, trunk_h + radius * (1.0 + dy), z)
        canvas.disc(centre, cam.focal * r * radius / z, _shade(leaves, rng.uniform(0.75, 1.2)), VEGETATION)


def _sample_cars(rng: np.random.Generator, street: _Street) -> List[Tuple[float, float, int]]:
    """(x, z, direction) of cars in the lanes, never overlapping another car of the same lane."""
    placed: List[Tuple[int, float]] = []  # (lane, z)
    cars: List[Tuple[float, float, int]] = []
    for _ in range(int(rng.integers(2, 9))):
        lane = int(rng.integers(0, len(street.lanes)))
        x, direction = street.lanes[lane]
        z = float(_log_uniform(rng, 4.0, 70.0)) + (6.0 if x == 0.0 else 0.0)  # keep clear of the ego car
        if all(abs(z - zc) > 6.5 for lc, zc in placed if lc == lane):
            placed.append((lane, z))
            cars.append((x + rng.uniform(-0.3, 0.3), z, direction))
    return cars


def _sidewalk_x(rng: np.random.Generator, street: _Street, low: float, high: float) -> float:
    """A lateral position on a random sidewalk, ``low``..``high`` (fractions of its width) from the curb."""
    if rng.random() < 0.5:
        return street.left_edge - street.sidewalk * rng.uniform(low, high)
    return street.right_edge + street.sidewalk * rng.uniform(low, high)


def _draw_objects(canvas: _Canvas, cam: _Camera, street: _Street, rng: np.random.Generator) -> None:
    """Cars, pedestrians, poles and trees, painted far to near so that nearer objects occlude farther ones."""
    objects = [(z, _draw_car, (x, z, d)) for x, z, d in _sample_cars(rng, street)]
    for _ in range(int(rng.integers(1, 7))):
        on_road = rng.random() < 0.15
        x = rng.uniform(street.left_edge, street.right_edge) if on_road else _sidewalk_x(rng, street, 0.15, 0.85)
        z = float(_log_uniform(rng, 4.0, 50.0))
        objects.append((z, _draw_person, (x, z)))
    for _ in range(int(rng.integers(1, 6))):
        z = float(_log_uniform(rng, 3.0, 80.0))
        objects.append((z, _draw_pole, (_sidewalk_x(rng, street, 0.05, 0.15), z)))
    for _ in range(int(rng.integers(1, 7))):
        z = float(_log_uniform(rng, 4.0, 90.0))
        objects.append((z, _draw_tree, (_sidewalk_x(rng, street, 0.5, 0.95), z)))
    for _, draw, args in sorted(objects, key=lambda o: -o[0]):
        draw(canvas, cam, rng, *args)


def _apply_lighting(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Global contrast, brightness and colour tint (one lookup table), sometimes a slight blur, and sensor noise."""
    contrast, brightness = rng.uniform(0.75, 1.25), rng.uniform(-30.0, 30.0)
    levels = np.arange(256, dtype=np.float64)[:, None]
    lut = ((levels - 128.0) * contrast + 128.0 + brightness) * rng.uniform(0.88, 1.12, 3)
    out = cv2.LUT(img, np.clip(np.round(lut), 0, 255).astype(np.uint8)[:, None, :])
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (3, 3), 0.6)
    amp = int(rng.integers(1, 5))  # triangular noise: the sum of two uniform integers in [-amp, amp]
    noise = rng.integers(-amp, amp + 1, out.shape, dtype=np.int16)
    noise += rng.integers(-amp, amp + 1, out.shape, dtype=np.int16)
    return np.clip(noise + out, 0, 255).astype(np.uint8)


def _compact_ids(inst: np.ndarray) -> np.ndarray:
    """Renumber instance ids to 1..n in drawing order, dropping instances that ended up fully hidden."""
    present = np.bincount(inst.ravel()) > 0
    present[0] = False
    lut = np.zeros(present.size, np.uint16)
    lut[present] = np.arange(1, int(present.sum()) + 1)
    return lut[inst]


def generate_scene(seed: int, width: int = DEFAULT_WIDTH,
                   height: int = DEFAULT_HEIGHT) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one random street scene.

    Args:
        seed: non-negative seed of the scene's ``numpy.random.Generator``; the same seed (and size) gives
            byte-identical outputs.
        width: image width in pixels (at least 32).
        height: image height in pixels (at least 32).

    Returns:
        ``(img, sem, inst)``: the RGB image (H, W, 3) uint8, the semantic mask (H, W) uint8 with indices into
        :data:`CLASSES`, and the instance mask (H, W) uint16 (0 for stuff, 1..n for the visible thing instances,
        i.e. poles, cars and persons, numbered far to near).
    """
    if width < 32 or height < 32:
        raise ValueError(f'generate_scene needs width and height >= 32, got {width}x{height}')
    rng = np.random.default_rng(seed)
    cam = _sample_camera(rng, width, height)
    street = _sample_street(rng)
    canvas = _Canvas(width, height)
    haze = _draw_sky(canvas, rng)
    z_near = _draw_ground(canvas, cam, street, rng)
    _draw_lane_marks(canvas, cam, street, rng, z_near)
    _draw_skyline(canvas, cam, rng, haze)
    _draw_buildings(canvas, cam, street, rng)
    _draw_objects(canvas, cam, street, rng)
    return _apply_lighting(canvas.img, rng), canvas.sem, _compact_ids(canvas.inst)


def scene_seed(base_seed: int, split: str, index: int) -> int:
    """The seed of image ``index`` of ``split`` in a dataset generated with ``base_seed``.

    ``base_seed * 1_000_003 + index`` for train and the same plus 500_001 for val, so that train and val never
    share a scene while each split's images stay fixed when the other split's size changes.
    """
    return base_seed * 1_000_003 + SPLITS.index(split) * 500_001 + index


def classes_info() -> Dict:
    """The content of ``classes.json``: class names, palette, thing classes and the ignore index."""
    return dict(classes=list(CLASSES), palette=[list(c) for c in PALETTE], thing_classes=list(THING_CLASSES),
                thing_ids=[CLASSES.index(c) for c in THING_CLASSES], ignore_index=IGNORE_INDEX,
                notes='lane markings and crosswalks are labelled road; signs and street-light arms are labelled '
                      'pole; tree trunks and grass are labelled vegetation; instances: 0 = stuff, 1..n = things')


def _relative_paths(split: str, count: int) -> Dict[str, List[str]]:
    """Relative paths (from the dataset root) of the images, semantic and instance masks of one split."""
    names = [f'{i:06d}' for i in range(count)]
    return dict(images=[f'images/{split}/{n}.jpg' for n in names],
                semantic=[f'semantic/{split}/{n}.png' for n in names],
                instances=[f'instances/{split}/{n}.png' for n in names])


def _all_paths(counts: Dict[str, int]) -> List[str]:
    """Every image and mask path of the dataset, relative to its root."""
    return [p for split, n in counts.items() for paths in _relative_paths(split, n).values() for p in paths]


def _read_json(path: str):
    """The parsed JSON file, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _differences(old: Dict, new: Dict) -> str:
    """``key: old -> new`` for every entry that differs between two parameter dicts."""
    keys = sorted(set(old) | set(new))
    return ', '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in keys if old.get(k) != new.get(k))


def _write_text(path: str, text: str) -> None:
    """Write ``text`` through a temporary file and an atomic rename."""
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def _remove_stale(root: str, keep: List[str]) -> None:
    """Remove generator-named files (``dddddd.jpg/png``) in the split folders that the dataset no longer has."""
    keep_set = set(keep)
    for kind in ('images', 'semantic', 'instances'):
        for split in SPLITS:
            folder = osp.join(root, kind, split)
            if not osp.isdir(folder):
                continue
            for name in os.listdir(folder):
                if _FILE_NAME.match(name) and f'{kind}/{split}/{name}' not in keep_set:
                    os.remove(osp.join(folder, name))


def _foreign_entries(root: str, limit: int = 3) -> List[str]:
    """Up to ``limit`` paths under ``root`` (relative to it) that this generator does not write: the sign of a folder
    of someone else's data, which it must not write into (nor remove files from, as it removes stale scenes)."""
    if not osp.isdir(root):
        return [root] if osp.exists(root) else []
    own = {'meta.json', 'classes.json', *(f'{split}.txt' for split in SPLITS)}
    found = []
    for name in sorted(os.listdir(root)):
        path = osp.join(root, name)
        if name in ('images', 'semantic', 'instances') and osp.isdir(path) and not osp.islink(path):
            for split in sorted(os.listdir(path)):
                folder = osp.join(path, split)
                if split not in SPLITS or not osp.isdir(folder):
                    found.append(folder)
                else:
                    found += [osp.join(folder, f) for f in sorted(os.listdir(folder))
                              if not (_FILE_NAME.match(f) or f.endswith('.tmp'))][:limit]
        elif name not in own and not name.endswith('.tmp'):
            found.append(path)
        if len(found) >= limit:
            break
    return [osp.relpath(p, root) for p in found[:limit]]


def _write_scene(root: str, paths: Tuple[str, str, str], seed: int, width: int, height: int) -> None:
    """Render one scene and write its JPEG image and PNG masks."""
    img, sem, inst = generate_scene(seed, width, height)
    img_path, sem_path, inst_path = (osp.join(root, p) for p in paths)
    ok = cv2.imwrite(img_path, cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    ok = ok and cv2.imwrite(sem_path, sem) and cv2.imwrite(inst_path, inst)
    if not ok:
        raise OSError(f'cv2.imwrite failed while writing {img_path} and its masks')


def write_synthetic_dataset(root: str, num_train: int, num_val: int, width: int = DEFAULT_WIDTH,
                            height: int = DEFAULT_HEIGHT, seed: int = 0, overwrite: bool = False,
                            progress: bool = False) -> Dict:
    """Write a synthetic street-scene dataset under ``root`` (layout in ``docs/synthetic_data.md``).

    Idempotent: when ``root/meta.json`` records the same parameters and every file exists, nothing is written.
    ``meta.json`` is removed first and written last, so an interrupted generation is detected and redone.
    A dataset with different parameters is only replaced when ``overwrite`` is True.

    Args:
        root: output folder (created if needed).
        num_train: number of training images.
        num_val: number of validation images.
        width: image width in pixels.
        height: image height in pixels.
        seed: base seed; image i of a split uses :func:`scene_seed` ``(seed, split, i)``.
        overwrite: regenerate even when a complete dataset (with the same or other parameters) is there.
        progress: print the progress while generating.

    Returns:
        A summary: ``root``, ``generated`` (False when the dataset was already complete), ``seconds``,
        the counts per split and the paths of ``meta.json``, ``classes.json`` and the list files.

    Raises:
        FileExistsError: ``root`` holds a complete dataset with other parameters and ``overwrite`` is False; or
            ``root`` holds files that this generator does not write (someone's data: never written into, whatever
            ``overwrite``).
    """
    if num_train < 0 or num_val < 0:
        raise ValueError(f'num_train and num_val must be >= 0, got {num_train} and {num_val}')
    start = time.perf_counter()
    meta = dict(generator='multisiam_mm.datasets.synthetic_streets', version=GENERATOR_VERSION, num_train=num_train,
                num_val=num_val, width=width, height=height, seed=seed, jpeg_quality=JPEG_QUALITY,
                seed_rule='scene_seed(seed, split, index) = seed*1000003 + {train: 0, val: 500001} + index')
    counts = dict(train=num_train, val=num_val)
    meta_path = osp.join(root, 'meta.json')
    summary = dict(root=root, num_train=num_train, num_val=num_val, width=width, height=height, seed=seed,
                   meta_file=meta_path, classes_file=osp.join(root, 'classes.json'),
                   list_files={split: osp.join(root, f'{split}.txt') for split in SPLITS})
    foreign = _foreign_entries(root)
    if foreign:
        raise FileExistsError(f'{root} holds files that are not a synthetic street-scene set (e.g. '
                              f'{", ".join(foreign)}); the generator writes only into an empty folder or one it made: '
                              'choose another folder')
    old = _read_json(meta_path)
    if not overwrite and old is not None:
        if old != meta:
            raise FileExistsError(f'{root} holds a synthetic dataset with other parameters '
                                  f'({_differences(old, meta)}); pass overwrite=True (CLI: --overwrite) to replace '
                                  'it, or choose another folder')
        if all(osp.isfile(osp.join(root, p)) for p in _all_paths(counts)):
            return dict(summary, generated=False, seconds=time.perf_counter() - start)
    if osp.exists(meta_path):
        os.remove(meta_path)
    for kind in ('images', 'semantic', 'instances'):
        for split in SPLITS:
            os.makedirs(osp.join(root, kind, split), exist_ok=True)
    _remove_stale(root, _all_paths(counts))
    total, done = num_train + num_val, 0
    for split, count in counts.items():
        paths = _relative_paths(split, count)
        for index, triple in enumerate(zip(paths['images'], paths['semantic'], paths['instances'])):
            _write_scene(root, triple, scene_seed(seed, split, index), width, height)
            done += 1
            if progress and (done % 100 == 0 or done == total):
                rate = done / (time.perf_counter() - start)
                print(f'[synthetic_streets] {done}/{total} images ({rate:.0f} images/s)', flush=True)
        _write_text(summary['list_files'][split], ''.join(f'{p}\n' for p in paths['images']))
    _write_text(summary['classes_file'], json.dumps(classes_info(), indent=2) + '\n')
    _write_text(meta_path, json.dumps(meta, indent=2) + '\n')
    return dict(summary, generated=True, seconds=time.perf_counter() - start)
