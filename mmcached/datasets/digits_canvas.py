"""A small COCO-format detection / instance segmentation set of real
handwritten digits on canvases, generated locally and deterministically from
scikit-learn's 8x8 digits (same arguments -> same bytes; nothing is
downloaded).

Layout written by :func:`make_digits_canvas` (and by
``tools/misc/make_digits_canvas.py``)::

    data/digits_canvas
    ├── annotations
    │   ├── instances_train.json
    │   └── instances_val.json
    ├── train/   00000.png ...
    └── val/     00000.png ...

Source digits follow the fixed split of :mod:`mmcached.datasets.digits`:
train canvases draw only from ``digits_split_indices('train')``, val
canvases only from ``digits_split_indices('val')``, so a classifier
pretrained on ``DigitsDataset(split='train')`` never sees a val digit.

Each canvas (``img_size`` square, grey PNG stored as 3 channels) has a dark
grey, slightly noisy background and 1 to ``max_objects`` digits. A digit is
its 8x8 source upscaled (``cv2.INTER_LINEAR``, as the pretraining's
``Resize``) to a random square size in ``[min_size, max_size]`` px, drawn
with a random brightness at a random place. A placement is rejected when the
box of its strokes has an IoU above ``max_iou`` with an earlier digit's, or
when it would leave an earlier digit (or itself) with less than
``min_visible`` of its strokes visible.

Rules:

- *strokes* of a digit: the pixels of its upscaled image above
  ``stroke_thr`` times its maximum;
- the image is the pixel-wise maximum of the background and the digits'
  intensities (then a little noise);
- the *visible* mask of a digit: its stroke pixels where it is the
  brightest of the digits whose strokes cover the pixel (ties go to the
  later digit), so instance masks never overlap;
- masks are stored as compressed RLE (``pycocotools.mask.encode``, counts as
  a string), which keeps the holes of a '0', '6', '8' or '9' exactly; the
  box is the tight box of the visible mask and ``area`` its pixel count;
- category ids 1..10 are the digits '0'..'9'; each annotation also keeps
  ``digit_index``, the source's index into ``load_digits()``.
"""
from typing import List

import cv2
import numpy as np

from mmcached.registry import DATASETS
from .digits import digits_split_indices
from .generated import GeneratedCocoDataset, generate_set, make_coco_split

CLASSES = tuple(str(i) for i in range(10))
# well separated colours for visualisation
PALETTE = [(220, 20, 60), (0, 130, 200), (60, 180, 75), (255, 225, 25),
           (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230),
           (210, 245, 60), (170, 110, 40)]

DEFAULT_DIGITS_CANVAS_CFG = dict(
    num_train=500,
    num_val=150,
    img_size=64,
    min_size=20,
    max_size=32,
    max_objects=4,
    max_iou=0.2,
    min_visible=0.6,
    stroke_thr=0.3,
    seed=0)


def _box(mask: np.ndarray) -> np.ndarray:
    """Tight box [x0, y0, x1, y1) of a non-empty mask."""
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.
    inter = float(iw * ih)
    area = lambda x: float((x[2] - x[0]) * (x[3] - x[1]))  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def _visible(values: List[np.ndarray], strokes: List[np.ndarray]):
    """Per digit, its stroke pixels where it is the brightest stroke (ties
    to the later digit)."""
    stacked = np.stack([np.where(s, v, -1.) for v, s in zip(values, strokes)])
    # argmax over the reversed stack picks the last maximum
    owner = len(values) - 1 - np.argmax(stacked[::-1], axis=0)
    return [s & (owner == i) for i, s in enumerate(strokes)]


def _make_image(rng: np.random.RandomState, sources: np.ndarray,
                labels: np.ndarray, img_size: int, min_size: int,
                max_size: int, max_objects: int, max_iou: float,
                min_visible: float, stroke_thr: float):
    """One canvas (H, W, 3) uint8 and its instances [(source position,
    label, visible mask)]."""
    values, strokes, boxes, picked = [], [], [], []
    for _ in range(rng.randint(1, max_objects + 1)):
        for _try in range(50):
            k = rng.randint(len(sources))
            size = rng.randint(min_size, max_size + 1)
            x0, y0 = rng.randint(0, img_size - size + 1, size=2)
            brightness = rng.uniform(170, 255)
            up = cv2.resize(
                sources[k], (size, size), interpolation=cv2.INTER_LINEAR)
            if up.max() <= 0:
                continue
            value = np.zeros((img_size, img_size), np.float32)
            value[y0:y0 + size, x0:x0 + size] = up * (brightness / 16.)
            stroke = np.zeros((img_size, img_size), bool)
            stroke[y0:y0 + size, x0:x0 + size] = up > stroke_thr * up.max()
            box = _box(stroke)
            if any(_iou(box, b) > max_iou for b in boxes):
                continue
            vis = _visible(values + [value], strokes + [stroke])
            if all(v.sum() >= min_visible * s.sum()
                   for v, s in zip(vis, strokes + [stroke])):
                values.append(value)
                strokes.append(stroke)
                boxes.append(box)
                picked.append(k)
                break
    img = np.full((img_size, img_size), rng.uniform(10, 70), np.float32)
    img += rng.normal(0, 6, size=img.shape)
    for v in values:
        img = np.maximum(img, v)
    img += rng.normal(0, 4, size=img.shape)
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    vis = _visible(values, strokes) if values else []
    instances = [(k, int(labels[k]), v) for k, v in zip(picked, vis)]
    return np.repeat(img[..., None], 3, axis=2), instances


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return dict(
        size=[int(s) for s in rle['size']],
        counts=rle['counts'].decode('ascii'))


def _load_sources(split: str):
    """The split's 8x8 digits (float32, 0..16) and labels."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    idx = digits_split_indices(split)
    return digits.images[idx].astype(np.float32), digits.target[idx], idx


def make_split(out_dir: str, split: str, num_images: int, img_size: int,
               min_size: int, max_size: int, max_objects: int, max_iou: float,
               min_visible: float, stroke_thr: float, seed: int) -> dict:
    """Write the images of one split and return its COCO dict."""
    sources, labels, source_ids = _load_sources(split)
    img_size, min_size, max_size = int(img_size), int(min_size), int(max_size)

    def draw(rng):
        img, instances = _make_image(rng, sources, labels, img_size, min_size,
                                     max_size, max_objects, max_iou,
                                     min_visible, stroke_thr)
        # digit_index: the source's index into sklearn's load_digits()
        return img, [(label + 1, vis, dict(digit_index=int(source_ids[k])))
                     for k, label, vis in instances]

    return make_coco_split(out_dir, split, num_images, seed, draw, _rle,
                           ('mmcached digits canvas (generated from '
                            'sklearn.datasets.load_digits)', CLASSES, 'digit'))


def _check(c: dict) -> None:
    if not 0 < c['min_size'] <= c['max_size'] <= c['img_size']:
        raise ValueError('need 0 < min_size <= max_size <= img_size')
    if not 0 < c['stroke_thr'] < 1:
        raise ValueError('need 0 < stroke_thr < 1')


def make_digits_canvas(out_dir: str, **cfg) -> str:
    """Generate the digits canvas set under ``out_dir`` (see the module
    docstring), atomically. ``cfg``: any of ``DEFAULT_DIGITS_CANVAS_CFG``'s
    keys, over its defaults."""
    return generate_set('digits-canvas', DEFAULT_DIGITS_CANVAS_CFG, make_split,
                        _check, out_dir, **cfg)


@DATASETS.register_module()
class DigitsCanvasDataset(GeneratedCocoDataset):
    """The generated digits canvas set (classes '0' ... '9'), made by
    :func:`make_digits_canvas` (with ``DEFAULT_DIGITS_CANVAS_CFG``) when its
    data_root is missing or empty (a few seconds; see
    :class:`GeneratedCocoDataset`)."""

    METAINFO = dict(classes=CLASSES, palette=PALETTE)
    DEFAULT_CFG = DEFAULT_DIGITS_CANVAS_CFG
    generate = staticmethod(make_digits_canvas)
