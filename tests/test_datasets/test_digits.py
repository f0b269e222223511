import numpy as np
import pytest

from mmcached.datasets import DigitsDataset, digits_split_indices


def test_split_sizes_disjoint_and_stratified():
    train = digits_split_indices('train')
    val = digits_split_indices('val')
    assert len(train) == 1438 and len(val) == 359
    assert not set(train) & set(val)
    assert sorted(np.concatenate([train, val])) == list(range(1797))
    from sklearn.datasets import load_digits
    labels = load_digits().target
    # every class is about 20% val
    for c in range(10):
        n = (labels == c).sum()
        assert abs((labels[val] == c).sum() - round(0.2 * n)) <= 1


def test_split_fixed():
    # Same seed, same split, every time; another seed, another split.
    assert np.array_equal(
        digits_split_indices('val'), digits_split_indices('val', seed=0))
    assert not np.array_equal(
        digits_split_indices('val'), digits_split_indices('val', seed=1))
    # Pinned: a change of the split would silently change reported numbers.
    assert digits_split_indices('val')[:8].tolist() == [
        3, 7, 13, 19, 36, 38, 43, 48
    ]


def test_bad_split():
    with pytest.raises(ValueError, match='split'):
        DigitsDataset(split='test')


def test_dataset_items_and_pipeline():
    ds = DigitsDataset(split='val')
    assert len(ds) == 359
    assert ds.metainfo['classes'] == tuple('0123456789')
    info = ds.get_data_info(0)
    assert info['img'].shape == (8, 8, 3) and info['img'].dtype == np.uint8
    assert info['img'].max() <= 255 and 0 <= info['gt_label'] <= 9
    assert len(ds.get_gt_labels()) == 359

    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    ds = DigitsDataset(
        split='train',
        pipeline=[
            dict(type='Resize', scale=(32, 32)),
            dict(type='PackInputs')
        ])
    out = ds[0]
    assert tuple(out['inputs'].shape) == (3, 32, 32)
    assert out['data_samples'].gt_label.item() == ds.get_data_info(
        0)['gt_label']
