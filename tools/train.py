"""Train an mmcached model from an MMDetection or MMPretrain config.

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--resume [PATH]]
        [--auto-scale-lr] [--cfg-options k=v ...] [--launcher pytorch]

The config's ``default_scope`` picks the toolbox; after checking the config
and the options, this runs that toolbox's own ``tools/train.py``.
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

# (dest, flag, kind, toolboxes that know it)
SPEC = [
    ('config', 'config', 'pos', 'mmdet mmpretrain'),
    ('work_dir', '--work-dir', 'value', 'mmdet mmpretrain'),
    ('resume', '--resume', 'opt', 'mmdet mmpretrain'),
    ('amp', '--amp', 'flag', 'mmdet mmpretrain'),
    ('auto_scale_lr', '--auto-scale-lr', 'flag', 'mmdet mmpretrain'),
    ('no_validate', '--no-validate', 'flag', 'mmpretrain'),
    ('no_pin_memory', '--no-pin-memory', 'flag', 'mmpretrain'),
    ('no_persistent_workers', '--no-persistent-workers', 'flag', 'mmpretrain'),
    ('launcher', '--launcher', 'value', 'mmdet mmpretrain'),
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a detector (mmdet config) or a classifier '
        '(mmpretrain config) with mmcached modules')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from PATH; without PATH, resume from the latest '
        'checkpoint in the work dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the real batch size')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='(mmpretrain configs) skip validation')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='(mmpretrain configs) no pin_memory in loaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='(mmpretrain configs) no persistent workers')
    return parse_tool_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config)
    check_cfg_options(cfg, option_keys(args.cfg_options))
    task = task_of(cfg)
    if args.auto_scale_lr and 'auto_scale_lr' not in cfg:
        raise CLIError('--auto-scale-lr needs auto_scale_lr = dict('
                       'base_batch_size=...) in the config')
    run_toolbox(task, 'train.py', toolbox_argv(args, SPEC, task))


if __name__ == '__main__':
    main_guard(main)
