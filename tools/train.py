"""Train with an MMDetection or MMPretrain config that uses mmcached.

    python tools/train.py CONFIG [the toolbox's train.py options]

Runs the config's toolbox's own ``tools/train.py`` (``default_scope``:
mmdet or mmpretrain) with the same arguments, after importing mmcached and
checking what mmcached adds: the config path, ``--cfg-options`` keys
(typos of existing keys, with suggestions) and the checkpoint that
``--resume`` / ``load_from`` will read. ``--cfg-options data_root=DIR``
points mmcached's dataset configs at DIR. ``CONFIG --help`` lists the
toolbox's options.
"""
import sys

import mmcached  # noqa: F401 - compat fixes and registrations
from mmcached.utils.cli import (CLIError, apply_data_root,
                                check_backbone_checkpoint, check_resume,
                                main_guard, parse_toolbox_command, run_toolbox)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parsed = parse_toolbox_command(argv, 'train.py',
                                   'python tools/train.py CONFIG [options]',
                                   __doc__)
    if parsed is None:
        return
    cfg, script, args = parsed
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.auto_scale_lr and 'auto_scale_lr' not in cfg:
        raise CLIError('--auto-scale-lr needs auto_scale_lr = dict('
                       'base_batch_size=...) in the config')
    check_resume(cfg, args)
    check_backbone_checkpoint(cfg, args.config)
    apply_data_root(args.cfg_options)
    run_toolbox(script, argv)


if __name__ == '__main__':
    main_guard(main)
