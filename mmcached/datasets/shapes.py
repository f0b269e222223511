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
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import List, Optional

import cv2
import numpy as np

from mmcached.registry import DATASETS
from .coco import CheckedCocoDataset, check_data_files

CLASSES = ('circle', 'square', 'triangle')
PALETTE = [(220, 20, 60), (0, 130, 200), (60, 180, 75)]
SPLIT_SEEDS = {'train': 0, 'val': 1}

DEFAULT_SHAPES_CFG = dict(
    num_train=600,
    num_val=150,
    img_size=128,
    min_size=14,
    max_size=56,
    max_objects=4,
    min_visible=0.6,
    seed=0)

SHAPES_LAYOUT = """\
  {root}
  ├── annotations
  │   ├── instances_train.json
  │   └── instances_val.json
  ├── train/   (images)
  └── val/     (images)"""


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
    if split not in SPLIT_SEEDS:
        raise ValueError(f'split must be one of {tuple(SPLIT_SEEDS)}')
    rng = np.random.RandomState([seed, SPLIT_SEEDS[split]])
    os.makedirs(osp.join(out_dir, split), exist_ok=True)
    images, annotations = [], []
    for img_id in range(num_images):
        img, instances = _make_image(rng, img_size, min_size, max_size,
                                     max_objects, min_visible)
        file_name = f'{img_id:05d}.png'
        # cv2 writes BGR; our arrays are RGB.
        cv2.imwrite(osp.join(out_dir, split, file_name), img[..., ::-1])
        images.append(
            dict(
                id=img_id,
                file_name=file_name,
                width=img_size,
                height=img_size))
        for cls_idx, vis in instances:
            polys = _polygons(vis)
            if not polys:
                continue
            ys, xs = np.nonzero(vis)
            x0, y0 = int(xs.min()), int(ys.min())
            w, h = int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=img_id,
                    category_id=cls_idx + 1,
                    bbox=[float(x0), float(y0),
                          float(w), float(h)],
                    area=float(vis.sum()),
                    segmentation=polys,
                    iscrowd=0))
    return dict(
        info=dict(
            description='mmcached shapes (generated)', split=split, seed=seed),
        images=images,
        annotations=annotations,
        categories=[
            dict(id=i + 1, name=n, supercategory='shape')
            for i, n in enumerate(CLASSES)
        ])


def make_shapes(out_dir: str,
                num_train: int = DEFAULT_SHAPES_CFG['num_train'],
                num_val: int = DEFAULT_SHAPES_CFG['num_val'],
                img_size: int = DEFAULT_SHAPES_CFG['img_size'],
                min_size: float = DEFAULT_SHAPES_CFG['min_size'],
                max_size: float = DEFAULT_SHAPES_CFG['max_size'],
                max_objects: int = DEFAULT_SHAPES_CFG['max_objects'],
                min_visible: float = DEFAULT_SHAPES_CFG['min_visible'],
                seed: int = DEFAULT_SHAPES_CFG['seed']) -> str:
    """Generate the shapes dataset under ``out_dir`` (see module docstring).

    The files are written to a temporary folder beside ``out_dir`` and moved
    into place at the end, so an interrupted run or a concurrent one (several
    dataloader ranks) never leaves a half-written dataset behind.
    """
    if not 0 < min_size <= max_size < img_size:
        raise ValueError('need 0 < min_size <= max_size < img_size')
    out_dir = osp.abspath(out_dir)
    parent = osp.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.shapes-tmp-', dir=parent)
    try:
        os.makedirs(osp.join(tmp, 'annotations'))
        for split, num in (('train', num_train), ('val', num_val)):
            coco = make_split(tmp, split, num, img_size, min_size, max_size,
                              max_objects, min_visible, seed)
            with open(
                    osp.join(tmp, 'annotations', f'instances_{split}.json'),
                    'w') as f:
                json.dump(coco, f)
        if osp.isdir(out_dir) and not os.listdir(out_dir):
            os.rmdir(out_dir)  # an empty folder counts as missing
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if not osp.isdir(out_dir):
                raise
            # Another process finished first; its output is identical.
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


@DATASETS.register_module()
class ShapesDataset(CheckedCocoDataset):
    """The generated shapes set (classes circle, square, triangle).

    With ``auto_generate=True`` (default) a missing or empty ``data_root`` is
    filled by :func:`make_shapes` with ``generate_cfg`` (default
    ``DEFAULT_SHAPES_CFG``) before loading; this takes a few seconds and gives
    the same files as ``python tools/misc/make_shapes.py --out <data_root>``.
    A data_root that exists but lacks the files is an error, never
    overwritten.
    """

    METAINFO = dict(classes=CLASSES, palette=PALETTE)
    LAYOUT = SHAPES_LAYOUT
    HINT = ('Generate it with: python tools/misc/make_shapes.py --out '
            '<data_root>')

    def __init__(self,
                 *args,
                 auto_generate: bool = True,
                 generate_cfg: Optional[dict] = None,
                 **kwargs):
        self.auto_generate = auto_generate
        self.generate_cfg = dict(DEFAULT_SHAPES_CFG, **(generate_cfg or {}))
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        root = self.data_root
        if self.auto_generate and root and (not osp.isdir(root)
                                            or not os.listdir(root)):
            make_shapes(root, **self.generate_cfg)
        return super().load_data_list()


__all__ = [
    'CLASSES', 'DEFAULT_SHAPES_CFG', 'make_shapes', 'make_split',
    'ShapesDataset', 'check_data_files'
]
