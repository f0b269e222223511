"""The command line the embedded data makers share (make_shapes.py,
make_digits_canvas.py): one option per setting of the dataset's generator,
defaulting to the dataset's own defaults, and a data root that is replaced
only with ``--force``."""
import argparse
import os
import os.path as osp
import shutil
import sys


def make_dataset_main(doc, make, defaults, out, floats=(), argv=None):
    """Parse ``argv`` (default: ``sys.argv``) and write the dataset with
    ``make(out, **settings)``. ``defaults``: the generator's settings and
    their defaults, each an option ``--name-with-dashes`` of its default's
    type, or float where its name is in ``floats``. ``doc``: the script's
    docstring, whose first line describes it."""
    parser = argparse.ArgumentParser(description=doc.split('\n')[0])
    parser.add_argument('--out', default=out, help='data root')
    for name, default in defaults.items():
        parser.add_argument(
            '--' + name.replace('_', '-'),
            type=float if name in floats else type(default),
            default=default)
    parser.add_argument(
        '--force', action='store_true', help='replace an existing data root')
    settings = vars(parser.parse_args(argv))
    root, force = settings.pop('out'), settings.pop('force')
    if osp.isdir(root) and os.listdir(root):
        if not force:
            sys.exit(f'{root} exists and is not empty; pass --force to '
                     'replace it')
        shutil.rmtree(root)
    print(f'wrote {make(root, **settings)}')
