"""Generate the embedded digits canvas detection / segmentation set (COCO
format) from scikit-learn's handwritten digits.

    python tools/misc/make_digits_canvas.py --out data/digits_canvas

Deterministic: the same arguments give the same files. ``DigitsCanvasDataset``
runs the same generator with the default arguments when its data_root is
missing or empty, so this command is only needed for other sizes or seeds.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))

from mmcached.datasets import digits_canvas  # noqa


def parse_args():
    d = digits_canvas.DEFAULT_DIGITS_CANVAS_CFG
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--out', default='data/digits_canvas', help='data root')
    parser.add_argument('--num-train', type=int, default=d['num_train'])
    parser.add_argument('--num-val', type=int, default=d['num_val'])
    parser.add_argument('--img-size', type=int, default=d['img_size'])
    parser.add_argument('--min-size', type=int, default=d['min_size'])
    parser.add_argument('--max-size', type=int, default=d['max_size'])
    parser.add_argument('--max-objects', type=int, default=d['max_objects'])
    parser.add_argument('--max-iou', type=float, default=d['max_iou'])
    parser.add_argument('--min-visible', type=float, default=d['min_visible'])
    parser.add_argument('--stroke-thr', type=float, default=d['stroke_thr'])
    parser.add_argument('--seed', type=int, default=d['seed'])
    parser.add_argument(
        '--force', action='store_true', help='replace an existing data root')
    return parser.parse_args()


def main():
    args = parse_args()
    if osp.isdir(args.out) and os.listdir(args.out):
        if not args.force:
            sys.exit(f'{args.out} exists and is not empty; pass --force to '
                     'replace it')
        import shutil
        shutil.rmtree(args.out)
    out = digits_canvas.make_digits_canvas(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        img_size=args.img_size,
        min_size=args.min_size,
        max_size=args.max_size,
        max_objects=args.max_objects,
        max_iou=args.max_iou,
        min_visible=args.min_visible,
        stroke_thr=args.stroke_thr,
        seed=args.seed)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
