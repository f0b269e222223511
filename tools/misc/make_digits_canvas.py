"""Generate the embedded digits canvas detection / segmentation set (COCO
format) from scikit-learn's handwritten digits.

    python tools/misc/make_digits_canvas.py --out data/digits_canvas

Deterministic: the same arguments give the same files. ``DigitsCanvasDataset``
runs the same generator with the default arguments when its data_root is
missing or empty, so this command is only needed for other sizes or seeds.
"""
from dataset_cli import make_dataset_main

from mmcached.datasets.digits_canvas import (DEFAULT_DIGITS_CANVAS_CFG,
                                             make_digits_canvas)


def main(argv=None):
    make_dataset_main(
        __doc__,
        make_digits_canvas,
        DEFAULT_DIGITS_CANVAS_CFG,
        out='data/digits_canvas',
        argv=argv)


if __name__ == '__main__':
    main()
