"""Test (evaluate) a checkpoint with an MMDetection or MMPretrain config
that uses mmcached.

    python tools/test.py CONFIG CHECKPOINT [the toolbox's test.py options]

Runs the config's toolbox's own ``tools/test.py`` (``default_scope``:
mmdet or mmpretrain) with the same arguments, after importing mmcached and
checking what mmcached adds: the config path, ``--cfg-options`` keys
(typos of existing keys, with suggestions) and the checkpoint (an
unreadable one stops before anything is written). ``--cfg-options
data_root=DIR`` points mmcached's dataset configs at DIR. ``CONFIG --help``
lists the toolbox's options.
"""
import sys

import mmcached  # noqa: F401 - compat fixes and registrations
from mmcached.utils import check_checkpoint_file
from mmcached.utils.cli import (apply_data_root, main_guard,
                                parse_toolbox_command, run_toolbox)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parsed = parse_toolbox_command(
        argv, 'test.py', 'python tools/test.py CONFIG CHECKPOINT [options]',
        __doc__)
    if parsed is None:
        return
    _, script, args = parsed
    if '://' not in args.checkpoint:  # URLs are the toolbox's to fetch
        check_checkpoint_file(args.checkpoint)
    apply_data_root(args.cfg_options)
    run_toolbox(script, argv)


if __name__ == '__main__':
    main_guard(main)
