"""A small COCO-format detection / instance segmentation set of simple shapes,
generated locally and deterministically (same arguments -> same bytes).

Layout written by :func:`make_shapes` (and by ``tools/misc/make_shapes.py``)::

    data/shapes
    ├── annotations
    │   ├── instances_train.json
    │   └── instances_val.json
    ├── train/   00000.png ...
    └── val/     00000.png ...

Each image holds 1 to ``max_objects`` filled circles, squares and triangles of
several sizes and rotations on a noisy background. Shapes may overlap: a later
shape occludes an earlier one, but placement keeps at least ``min_visible`` of
every shape visible and never puts a shape mostly inside another. The masks
are the *visible* regions, stored as polygons (outer contours), and the boxes
are the tight boxes of those regions.
"""
from typing import List

import cv2
import numpy as np

from mmcached.registry import DATASETS
from .generated import GeneratedCocoDataset, generate_set, make_coco_split

CLASSES = ('circle', 'square', 'triangle')
PALETTE = [(220, 20, 60), (0, 130, 200), (60, 180, 75)]

DEFAULT_SHAPES_CFG = dict(
    num_train=600,
    num_val=150,
    img_size=128,
    min_size=14,
    max_size=56,
    max_objects=4,
    min_visible=0.6,
    seed=0)


def _outline(cls: str, cx: float, cy: float, size: float,
             angle: float) -> np.ndarray:
    """Vertices (K, 2) of a shape whose extent is about ``size`` pixels."""
    if cls == 'circle':
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        r = size / 2
    elif cls == 'square':
        t = angle + np.pi / 4 + np.arange(4) * np.pi / 2
        r = 0.8 * size / np.sqrt(2)  # side 0.8 * size, area near a circle's
    elif cls == 'triangle':
        t = angle + np.arange(3) * 2 * np.pi / 3
        r = size / 2 * 1.15
    else:
        raise ValueError(f'unknown shape {cls!r}')
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def _raster(poly: np.ndarray, img_size: int) -> np.ndarray:
    mask = np.zeros((img_size, img_size), np.uint8)
    # Sub-pixel vertices (shift=4) so small shapes keep their form.
    pts = np.round(poly * 16).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _polygons(mask: np.ndarray) -> List[List[float]]:
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        c = c.reshape(-1, 2)
        if len(c) >= 3:  # COCO needs >= 3 points per polygon
            polys.append([float(v) for v in c.reshape(-1)])
    return polys


def _colour(rng: np.random.RandomState, avoid: np.ndarray) -> np.ndarray:
    """A colour far enough from the background to be seen."""
    while True:
        c = rng.randint(0, 256, size=3)
        if np.abs(c - avoid).sum() >= 180:
            return c


def _make_image(rng: np.random.RandomState, img_size: int, min_size: float,
                max_size: float, max_objects: int, min_visible: float):
    """One image (H, W, 3) uint8 and its instances [(cls_idx, mask)]."""
    bg = rng.randint(0, 256, size=3)
    placed = []  # [cls_idx, full_mask, visible_mask, colour]
    for _ in range(rng.randint(1, max_objects + 1)):
        for _try in range(50):
            cls_idx = rng.randint(len(CLASSES))
            size = rng.uniform(min_size, max_size)
            half = size / 2 * 1.2 + 1
            cx, cy = rng.uniform(half, img_size - half, size=2)
            full = _raster(
                _outline(CLASSES[cls_idx], cx, cy, size,
                         rng.uniform(0, 2 * np.pi)), img_size)
            if full.sum() < 16:
                continue
            ok = True
            for _c, old_full, old_vis, _col in placed:
                # Keep every earlier shape mostly visible, and never put a
                # shape mostly inside another (that would punch a hole in it,
                # which an outer contour cannot describe).
                if (old_vis & ~full).sum() < min_visible * old_full.sum() or \
                        (old_vis & full).sum() > 0.5 * full.sum():
                    ok = False
                    break
            if ok:
                break
        else:
            continue
        for item in placed:
            item[2] = item[2] & ~full
        placed.append([cls_idx, full, full.copy(), _colour(rng, bg)])

    img = np.empty((img_size, img_size, 3), np.float32)
    img[:] = bg
    for _c, _full, vis, col in placed:
        img[vis] = col
    img += rng.normal(0, 8, size=img.shape)
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return img, [(c, vis) for c, _full, vis, _col in placed]


def make_split(out_dir: str, split: str, num_images: int, img_size: int,
               min_size: float, max_size: float, max_objects: int,
               min_visible: float, seed: int) -> dict:
    """Write the images of one split and return its COCO dict."""

    def draw(rng):
        img, instances = _make_image(rng, img_size, min_size, max_size,
                                     max_objects, min_visible)
        return img, [(c + 1, vis, {}) for c, vis in instances]

    return make_coco_split(out_dir, split, num_images, seed, draw, _polygons,
                           ('mmcached shapes (generated)', CLASSES, 'shape'))


def _check(c: dict) -> None:
    if not 0 < c['min_size'] <= c['max_size'] < c['img_size']:
        raise ValueError('need 0 < min_size <= max_size < img_size')


def make_shapes(out_dir: str, **cfg) -> str:
    """Generate the shapes dataset under ``out_dir`` (see module docstring),
    atomically. ``cfg``: any of ``DEFAULT_SHAPES_CFG``'s keys, over its
    defaults."""
    return generate_set('shapes', DEFAULT_SHAPES_CFG, make_split, _check,
                        out_dir, **cfg)


@DATASETS.register_module()
class ShapesDataset(GeneratedCocoDataset):
    """The generated shapes set (classes circle, square, triangle), made by
    :func:`make_shapes` (with ``DEFAULT_SHAPES_CFG``) when its data_root is
    missing or empty (a few seconds; see :class:`GeneratedCocoDataset`)."""

    METAINFO = dict(classes=CLASSES, palette=PALETTE)
    DEFAULT_CFG = DEFAULT_SHAPES_CFG
    generate = staticmethod(make_shapes)
