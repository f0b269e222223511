"""Test (evaluate) an mmcached checkpoint with an MMDetection or MMPretrain
config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--show-dir DIR] [--tta] [--cfg-options k=v ...] [--launcher pytorch]

The config's ``default_scope`` picks the toolbox; after checking the config,
the checkpoint and the options, this runs that toolbox's own
``tools/test.py``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmcached  # noqa: E402,F401 - compat fixes and registrations
from mmcached.utils.cli import check_cfg_options  # noqa: E402
from mmcached.utils.cli import (CLIError, load_config, main_guard, option_keys,
                                parse_tool_args, run_toolbox, task_of,
                                toolbox_argv)

SPEC = [
    ('config', 'config', 'pos', 'mmdet mmpretrain'),
    ('checkpoint', 'checkpoint', 'pos', 'mmdet mmpretrain'),
    ('work_dir', '--work-dir', 'value', 'mmdet mmpretrain'),
    ('out', '--out', 'value', 'mmdet mmpretrain'),
    ('out_item', '--out-item', 'value', 'mmpretrain'),
    ('show', '--show', 'flag', 'mmdet mmpretrain'),
    ('show_dir', '--show-dir', 'value', 'mmdet mmpretrain'),
    ('wait_time', '--wait-time', 'value', 'mmdet mmpretrain'),
    ('amp', '--amp', 'flag', 'mmpretrain'),
    ('tta', '--tta', 'flag', 'mmdet mmpretrain'),
    ('launcher', '--launcher', 'value', 'mmdet mmpretrain'),
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test a detector (mmdet config) or a classifier '
        '(mmpretrain config) with mmcached modules')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the metrics')
    parser.add_argument('--out', help='dump predictions to a pickle file')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        help='(mmpretrain configs) what --out holds')
    parser.add_argument(
        '--show',
        action='store_true',
        help='show prediction results in a window')
    parser.add_argument(
        '--show-dir',
        help='save images with drawn predictions here '
        '(under the work dir / timestamp)')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=None,
        help='the interval of --show (s)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='(mmpretrain configs) mixed precision test')
    parser.add_argument(
        '--tta', action='store_true', help='test time augmentation')
    return parse_tool_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config)
    check_cfg_options(cfg, option_keys(args.cfg_options))
    if not osp.isfile(args.checkpoint):
        raise CLIError(f'checkpoint {args.checkpoint!r} does not exist')
    if args.out and not args.out.endswith(('.pkl', '.pickle')):
        raise CLIError(f'--out must be a .pkl file, got {args.out!r}')
    task = task_of(cfg)
    run_toolbox(task, 'test.py', toolbox_argv(args, SPEC, task))


if __name__ == '__main__':
    main_guard(main)
