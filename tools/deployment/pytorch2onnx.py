"""Export a classifier, or a detector's backbone, to ONNX and check it
against PyTorch with onnxruntime.

    python tools/deployment/pytorch2onnx.py CONFIG [--checkpoint CKPT]
        [--shape H W] [--batch N] [--verify-shape H W] [--out FILE]

The model is built from CONFIG (an mmpretrain classifier: the whole model,
image to class scores; an mmdet detector: its backbone, image to the
feature maps), loaded from CKPT if given, and exported with torch.export
and ``torch.onnx.export`` at batch N and H x W (default: the backbone's
image size), with batch, height and width left dynamic where the model
allows it. An axis the model fixes (Memory Caching's segment layout fixes
the token count) is reported as static, with the condition it recorded.
onnxruntime then runs the file at the export size and, per dynamic axis,
at another size (``--verify-shape``, default H + 2s x W + 4s for the
backbone's stride s; batch N + 1), and the largest absolute difference to
PyTorch is printed per output, with how far each is from the model computed
in float64 (PyTorch in float32 is that far too: the model's own float32
rounding). Exits 1 if onnxruntime fails, or if the file differs from
PyTorch by more than ``--atol`` and is more than twice as far from float64
as PyTorch in float32 is.
"""
import argparse
import copy
import os
import os.path as osp
import sys

import numpy as np
import torch

import mmcached  # noqa: F401 - registrations and compat fixes
from mmcached.utils.cli import CLIError, load_config, main_guard


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a classifier or a detector backbone to ONNX')
    parser.add_argument('config', help='config file (mmpretrain or mmdet)')
    parser.add_argument('--checkpoint', help='weights to load')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='export size (default: the backbone image size, else 224)')
    parser.add_argument(
        '--batch', type=int, default=2, help='export batch size (default: 2)')
    parser.add_argument(
        '--verify-shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='second size checked with onnxruntime')
    parser.add_argument(
        '--out', help='ONNX file (default: work_dirs/'
        '<config name>.onnx)')
    parser.add_argument(
        '--atol',
        type=float,
        default=1e-4,
        help='largest difference to PyTorch accepted whatever the '
        "model's float32 rounding (default 1e-4, see above)")
    parser.add_argument('--opset', type=int, default=18)
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error('--batch must be >= 1')
    return args


class Exported(torch.nn.Module):
    """What is exported: the classifier's scores or the backbone's maps."""

    def __init__(self, model, classifier: bool):
        super().__init__()
        self.model = model
        self.classifier = classifier

    def forward(self, x):
        if self.classifier:
            return self.model(x, mode='tensor')
        return tuple(self.model.backbone(x))


def build(cfg, checkpoint=None):
    """(module to export, its stride, its default size) from a config."""
    from mmengine.registry import MODELS, DefaultScope
    from mmengine.runner import load_checkpoint
    if cfg.default_scope not in ('mmpretrain', 'mmdet'):
        raise CLIError(f'default_scope {cfg.default_scope!r}: mmpretrain '
                       'classifiers and mmdet detectors only')
    backbone = cfg.model.backbone
    if cfg.default_scope == 'mmdet' and backbone.get('init_cfg'):
        backbone.init_cfg = None  # weights come from --checkpoint, if any
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu')
    model.eval()
    size = backbone.get('img_size', backbone.get('pretrain_img_size', 224))
    stride = backbone.get('patch_size', 32)
    return (Exported(model,
                     cfg.default_scope == 'mmpretrain').eval(), stride, size)


def export(module, x, path, opset):
    """torch.export with dynamic batch, height and width where the model
    allows them, then ONNX; returns the ExportedProgram."""
    auto = torch.export.Dim.AUTO
    program = torch.export.export(
        module, (x, ), dynamic_shapes={'x': {
            0: auto,
            2: auto,
            3: auto
        }})
    torch.onnx.export(
        program, (x, ),
        path,
        input_names=['input'],
        dynamo=True,
        opset_version=opset)
    return program


def accepts(program, shape) -> str:
    """'' if the exported program runs on an input of ``shape``, else the
    condition it recorded that the shape breaks."""
    try:
        with torch.no_grad():
            program.module()(torch.randn(*shape))
    except (AssertionError, RuntimeError) as e:
        return str(e).splitlines()[0][:200]
    return ''


def _outputs(module, x):
    """The module's outputs on x as float64 numpy arrays."""
    with torch.no_grad():
        out = module(x)
    out = [out] if isinstance(out, torch.Tensor) else list(out)
    return [o.double().numpy() for o in out]


def _largest(a, b):
    """The largest absolute difference per output."""
    return [float(np.abs(x - y).max()) for x, y in zip(a, b)]


def verify(module, path, shapes, atol):
    """Run the ONNX file and PyTorch (float32 and float64) on random inputs
    of ``shapes``; print the largest differences per output; return per
    shape whether the file passed (see the module docstring)."""
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    exact_module = copy.deepcopy(module).double()
    passed = {}
    for shape in shapes:
        x = torch.randn(*shape)
        ref = _outputs(module, x)
        # what float32 itself costs the model: Memory Caching's gates are
        # softmaxes of key sums (logits of hundreds at random weights), and
        # its PVTv2-B2 is ~1e-4 off in float32 where the uncached one is 6e-7
        exact = _outputs(exact_module, x.double())
        try:
            outs = session.run(None, {'input': x.numpy()})
        except Exception as e:  # noqa: BLE001 - onnxruntime's own errors
            print(f'{tuple(shape)}: onnxruntime failed: '
                  f'{str(e).splitlines()[0][:300]}')
            passed[tuple(shape)] = False
            continue
        diffs = _largest(outs, ref)
        onnx_err = _largest(outs, exact)
        torch_err = _largest(ref, exact)
        over = [
            d > atol and o > 2 * t
            for d, o, t in zip(diffs, onnx_err, torch_err)
        ]
        print(f'{tuple(shape)}: max |onnx - torch| per output: ' +
              ', '.join(f'{d:.2e}' for d in diffs) +
              (f'  > atol {atol}, and more than twice torch float32 '
               'off float64' if any(over) else ''))
        for what, errs in (('torch', torch_err), ('onnx', onnx_err)):
            print(f'{tuple(shape)}: max |{what} - torch float64| per output:'
                  ' ' + ', '.join(f'{e:.2e}' for e in errs))
        passed[tuple(shape)] = not any(over)
    return passed


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config)
    module, stride, size = build(cfg, args.checkpoint)
    h, w = args.shape or ((size, size) if isinstance(size, int) else size)
    out = args.out or osp.join(
        'work_dirs',
        osp.splitext(osp.basename(args.config))[0] + '.onnx')
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    x = torch.randn(args.batch, 3, h, w)
    program = export(module, x, out, args.opset)
    print(f'exported {out} at {tuple(x.shape)}')
    vh, vw = args.verify_shape or (h + 2 * stride, w + 4 * stride)
    shapes = [list(x.shape)]
    # each axis on its own: the model may fix one and not the other
    for what, shape in (('batch', [args.batch + 1, 3, h, w]),
                        ('height and width', [args.batch, 3, vh, vw])):
        why = accepts(program, shape)
        if why:
            print(f'{what}: static (the model fixes it: {why})')
        else:
            print(f'{what}: dynamic')
            shapes.append(shape)
    if not all(verify(module, out, shapes, args.atol).values()):
        sys.exit(1)


if __name__ == '__main__':
    main_guard(main)
