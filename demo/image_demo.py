"""Run a config (and optionally its checkpoint) on one image and draw the
predictions to a file.

    python demo/image_demo.py IMAGE CONFIG [--weights CKPT] [--out-file OUT]

Detection configs (default scope mmdet) go through mmdet's ``DetInferencer``,
classification configs (mmpretrain) through mmpretrain's
``ImageClassificationInferencer``. Without ``--weights`` the model keeps its
initial weights (useful to check a config; predictions are noise).
"""
import argparse
import os
import os.path as osp
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('--weights', default=None, help='checkpoint file')
    parser.add_argument(
        '--out-file',
        default=None,
        help='where to draw the predictions (default: outputs/<image name>)')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='detection: draw boxes / masks scoring at least this')
    return parser.parse_args(argv)


def load_config(path):
    """The config with mmcached imported, so its custom types resolve."""
    from mmengine.config import Config

    import mmcached  # noqa: F401 - registers our modules
    return Config.fromfile(path)


def infer_detection(args, cfg):
    from mmdet.apis import DetInferencer
    inferencer = DetInferencer(
        model=cfg,
        weights=args.weights,
        device=args.device,
        show_progress=False)
    if args.weights is None:
        # No checkpoint meta: take the classes from the config's dataset
        # rather than mmdet's COCO fallback.
        from mmengine.registry import DATASETS
        ds_cls = DATASETS.get(cfg.test_dataloader.dataset.type)
        meta = getattr(ds_cls, 'METAINFO', None)
        if meta:
            inferencer.model.dataset_meta = dict(meta)
            inferencer.visualizer.dataset_meta = dict(meta)
    out = inferencer(
        args.img,
        return_vis=True,
        no_save_vis=True,
        pred_score_thr=args.score_thr)
    pred = out['predictions'][0]
    keep = [i for i, s in enumerate(pred['scores']) if s >= args.score_thr]
    classes = inferencer.model.dataset_meta.get('classes', ())
    lines = []
    for i in keep:
        label = pred['labels'][i]
        name = classes[label] if label < len(classes) else str(label)
        box = ', '.join(f'{v:.1f}' for v in pred['bboxes'][i])
        lines.append(f'{name} {pred["scores"][i]:.3f} [{box}]')
    return out['visualization'][0], lines


def infer_classification(args, cfg):
    import mmcv
    from mmpretrain.apis import ImageClassificationInferencer
    from mmpretrain.visualization import UniversalVisualizer
    inferencer = ImageClassificationInferencer(
        model=cfg, pretrained=args.weights or False, device=args.device)
    sample = inferencer(args.img, return_datasamples=True)[0]
    label = int(sample.pred_label)
    classes = inferencer.classes or ()
    name = classes[label] if label < len(classes) else str(label)
    img = mmcv.imread(args.img, channel_order='rgb')
    visualizer = inferencer.visualizer or UniversalVisualizer()
    # Small inputs (8x8 digits) are enlarged so the label stays readable.
    vis = visualizer.visualize_cls(
        img,
        sample,
        classes=classes or None,
        resize=224 if min(img.shape[:2]) < 224 else None,
        draw_gt=False,
        draw_score=True)
    return vis, [f'{name} {float(sample.pred_score[label]):.3f}']


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.img):
        sys.exit(f'image {args.img!r} not found')
    cfg = load_config(args.config)
    scope = cfg.get('default_scope', None)
    if scope == 'mmdet':
        vis, lines = infer_detection(args, cfg)
    elif scope == 'mmpretrain':
        vis, lines = infer_classification(args, cfg)
    else:
        sys.exit(f'{args.config}: default_scope is {scope!r}; expected '
                 "'mmdet' or 'mmpretrain'")
    out_file = args.out_file or osp.join('outputs', osp.basename(args.img))
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    import mmcv
    mmcv.imwrite(vis[..., ::-1], out_file)  # visualizers draw RGB
    for line in lines:
        print(line)
    print(f'predictions drawn to {out_file}')
    return out_file


if __name__ == '__main__':
    main()
