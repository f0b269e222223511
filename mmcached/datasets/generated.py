"""What the generated COCO-format sets (shapes, digits canvas) share: the
folder layout, the per-split random stream, the COCO dict, an atomic write
of the whole set, and a dataset class that generates a missing set."""
import difflib
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .coco import CheckedCocoDataset

SPLIT_SEEDS = {'train': 0, 'val': 1}

GENERATED_LAYOUT = """\
  {root}
  ├── annotations
  │   ├── instances_train.json
  │   └── instances_val.json
  ├── train/   (images)
  └── val/     (images)"""


def split_rng(seed: int, split: str) -> np.random.RandomState:
    """The random stream of one split (the same for the same arguments)."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f'split must be one of {tuple(SPLIT_SEEDS)}')
    return np.random.RandomState([seed, SPLIT_SEEDS[split]])


def image_entry(img_id: int, img_size: int) -> dict:
    """The COCO ``images`` entry of a square image ``{img_id:05d}.png``."""
    return dict(
        id=img_id,
        file_name=f'{img_id:05d}.png',
        width=img_size,
        height=img_size)


def coco_dict(description: str, split: str, seed: int, images: list,
              annotations: list, classes: Sequence[str],
              supercategory: str) -> dict:
    """A split's COCO dict, category ids 1..len(classes)."""
    return dict(
        info=dict(description=description, split=split, seed=seed),
        images=images,
        annotations=annotations,
        categories=[
            dict(id=i + 1, name=n, supercategory=supercategory)
            for i, n in enumerate(classes)
        ])


def resolve_cfg(name: str, defaults: dict, cfg: dict) -> dict:
    """``cfg`` over ``defaults``; an unknown key is an error naming the
    nearest known one."""
    unknown = sorted(set(cfg) - set(defaults))
    if unknown:
        hints = [
            f'{k!r}' +
            ''.join(f' (did you mean {c!r}?)'
                    for c in difflib.get_close_matches(k, list(defaults), n=1))
            for k in unknown
        ]
        raise TypeError(f'{name}: unknown argument ' + ', '.join(hints) +
                        f'; known: {sorted(defaults)}')
    return dict(defaults, **cfg)


#: what a set's ``draw(rng)`` returns per image: the RGB image (H, W, 3)
#: uint8 and its instances (category id, visible mask (H, W) bool, extra
#: annotation fields)
Drawn = Tuple[np.ndarray, List[Tuple[int, np.ndarray, dict]]]


def make_coco_split(out_dir: str, split: str, num_images: int, seed: int,
                    draw: Callable[[np.random.RandomState], Drawn],
                    segment: Callable[[np.ndarray],
                                      object], info: Tuple[str, Sequence[str],
                                                           str]) -> dict:
    """Write ``num_images`` images of ``draw`` into ``out_dir/split`` and
    return the split's COCO dict. Each instance's box is the tight box of
    its visible mask and its area the mask's pixel count; ``segment(mask)``
    gives its ``segmentation`` (an empty one drops the instance). ``info``:
    (description, classes, supercategory)."""
    rng = split_rng(seed, split)
    os.makedirs(osp.join(out_dir, split), exist_ok=True)
    images, annotations = [], []
    for img_id in range(num_images):
        img, instances = draw(rng)
        images.append(image_entry(img_id, img.shape[0]))
        # cv2 writes BGR; our arrays are RGB.
        cv2.imwrite(
            osp.join(out_dir, split, images[-1]['file_name']), img[..., ::-1])
        for category_id, vis, extra in instances:
            segmentation = segment(vis)
            if not segmentation:
                continue
            ys, xs = np.nonzero(vis)
            x0, y0 = int(xs.min()), int(ys.min())
            w, h = int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=img_id,
                    category_id=category_id,
                    bbox=[float(x0), float(y0),
                          float(w), float(h)],
                    area=float(vis.sum()),
                    segmentation=segmentation,
                    iscrowd=0,
                    **extra))
    return coco_dict(info[0], split, seed, images, annotations, *info[1:])


def write_generated(out_dir: str, name: str,
                    make_split: Callable[[str, str, int], dict],
                    num_train: int, num_val: int) -> str:
    """Write a generated set under ``out_dir``: ``make_split(folder, split,
    num_images)`` writes a split's images into ``folder/split`` and returns
    its COCO dict.

    The files are written to a temporary folder beside ``out_dir`` and moved
    into place at the end, so an interrupted run or a concurrent one (several
    dataloader ranks) never leaves a half-written dataset behind.
    """
    out_dir = osp.abspath(out_dir)
    parent = osp.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{name}-tmp-', dir=parent)
    try:
        os.makedirs(osp.join(tmp, 'annotations'))
        for split, num in (('train', num_train), ('val', num_val)):
            coco = make_split(tmp, split, num)
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


def generate_set(name: str, defaults: dict, make_split: Callable[..., dict],
                 check: Callable[[dict], None], out_dir: str, **cfg) -> str:
    """Generate a set under ``out_dir``, atomically: ``cfg`` (any keys of
    ``defaults``) over ``defaults``, checked by ``check``; each split made
    by ``make_split(folder, split, num_images, **the other keys)``."""
    c = resolve_cfg(name, defaults, cfg)
    check(c)
    num_train, num_val = c.pop('num_train'), c.pop('num_val')

    def split(folder, split, num):
        return make_split(folder, split, num, **c)

    return write_generated(out_dir, name, split, num_train, num_val)


class GeneratedCocoDataset(CheckedCocoDataset):
    """A generated set: with ``auto_generate=True`` (default) a missing or
    empty ``data_root`` is filled by the class's ``generate`` function with
    ``generate_cfg`` (over the class's ``DEFAULT_CFG``) before loading; a
    data_root that exists but lacks the files is an error, never
    overwritten."""

    DEFAULT_CFG: dict = {}
    LAYOUT = GENERATED_LAYOUT

    @staticmethod
    def generate(out_dir: str, **cfg) -> str:
        raise NotImplementedError

    @property
    def HINT(self) -> str:  # noqa: N802 - the base's class attribute
        # the tool of the same name writes the same files
        return (f'Generate it with: python tools/misc/'
                f'{self.generate.__name__}.py --out <data_root>')

    def __init__(self,
                 *args,
                 auto_generate: bool = True,
                 generate_cfg: Optional[dict] = None,
                 **kwargs):
        self.auto_generate = auto_generate
        self.generate_cfg = dict(self.DEFAULT_CFG, **(generate_cfg or {}))
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        root = self.data_root
        if self.auto_generate and root and (not osp.isdir(root)
                                            or not os.listdir(root)):
            self.generate(root, **self.generate_cfg)
        return super().load_data_list()
