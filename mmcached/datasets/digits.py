"""sklearn's handwritten digits as an mmpretrain classification dataset.

1,797 real 8x8 grey images of 10 classes, shipped inside scikit-learn, so
nothing is downloaded. The split is fixed: per class, a seeded permutation
puts ``val_fraction`` of the images in ``val`` and the rest in ``train``.
"""
from typing import List

import numpy as np
from mmpretrain.datasets import BaseDataset

from mmcached.registry import DATASETS

SPLITS = ('train', 'val', 'all')


def digits_split_indices(split: str,
                         val_fraction: float = 0.2,
                         seed: int = 0) -> np.ndarray:
    """Indices into ``sklearn.datasets.load_digits()`` for one split.

    Stratified and deterministic: ``np.random.RandomState`` is a frozen
    generator, so the split does not change across numpy / sklearn versions.
    """
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    if not 0 < val_fraction < 1:
        raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction}')
    from sklearn.datasets import load_digits
    labels = load_digits().target
    if split == 'all':
        return np.arange(len(labels))
    rng = np.random.RandomState(seed)
    chosen = []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(len(idx) * val_fraction))
        chosen.append(idx[:n_val] if split == 'val' else idx[n_val:])
    return np.sort(np.concatenate(chosen))


@DATASETS.register_module()
class DigitsDataset(BaseDataset):
    """Handwritten digits (``sklearn.datasets.load_digits``), in memory.

    Each sample carries ``img``: the 8x8 image scaled from 0..16 to 0..255,
    uint8, repeated to 3 channels (H, W, 3), so the usual image pipelines
    (``Resize``, ``RandomCrop``, ``PackInputs``) apply without
    ``LoadImageFromFile``. Upsample in the pipeline (e.g. to 32x32).

    Args:
        split (str): 'train' (1,438 images), 'val' (359) or 'all' (1,797).
        val_fraction (float): Share of each class in 'val'. Default: 0.2.
        seed (int): Seed of the split. Default: 0.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset``
            (``pipeline``, ``test_mode``, ...). ``ann_file`` is not used.
    """

    METAINFO = {'classes': tuple(str(i) for i in range(10))}

    def __init__(self,
                 split: str = 'train',
                 val_fraction: float = 0.2,
                 seed: int = 0,
                 ann_file: str = '',
                 **kwargs):
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        self.split = split
        self.val_fraction = val_fraction
        self.seed = seed
        super().__init__(ann_file=ann_file, **kwargs)

    def load_data_list(self) -> List[dict]:
        from sklearn.datasets import load_digits
        digits = load_digits()
        indices = digits_split_indices(self.split, self.val_fraction,
                                       self.seed)
        data_list = []
        for i in indices:
            grey = np.round(digits.images[i] * (255. / 16.)).astype(np.uint8)
            img = np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
            data_list.append(
                dict(
                    img=img,
                    img_shape=img.shape[:2],
                    ori_shape=img.shape[:2],
                    gt_label=int(digits.target[i]),
                    sample_id=int(i)))
        return data_list

    def extra_repr(self) -> List[str]:
        return [
            f'Split: \t{self.split} (val_fraction={self.val_fraction}, '
            f'seed={self.seed})'
        ]
