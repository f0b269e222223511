"""Generate the embedded shapes detection / segmentation set (COCO format).

    python tools/misc/make_shapes.py --out data/shapes

Deterministic: the same arguments give the same files. ``ShapesDataset``
runs the same generator with the default arguments when its data_root is
missing or empty, so this command is only needed for other sizes or seeds.
"""
from dataset_cli import make_dataset_main

from mmcached.datasets.shapes import DEFAULT_SHAPES_CFG, make_shapes


def main(argv=None):
    # sizes in pixels, fractions allowed
    make_dataset_main(
        __doc__,
        make_shapes,
        DEFAULT_SHAPES_CFG,
        out='data/shapes',
        floats=('min_size', 'max_size'),
        argv=argv)


if __name__ == '__main__':
    main()
