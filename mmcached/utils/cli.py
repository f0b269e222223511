"""Helpers behind ``tools/train.py`` and ``tools/test.py``.

Our tools check what a user typed (config path, ``--cfg-options`` keys, flags
the config's toolbox does not know), then hand over to that toolbox's own,
unmodified ``tools/train.py`` / ``tools/test.py``, which its wheel ships under
``<package>/.mim/tools``. The toolbox is chosen by the config's
``default_scope`` (``mmdet`` or ``mmpretrain``).
"""
import difflib
import os
import os.path as osp
import runpy
import sys
from typing import List, Optional, Sequence

from mmengine.config import Config

TASKS = ('mmdet', 'mmpretrain')


class CLIError(Exception):
    """A mistake in what the user typed; printed without a traceback."""


def load_config(path: str) -> Config:
    """Load a config, turning a missing or broken file into a CLIError."""
    if not osp.isfile(path):
        hint = ''
        if not path.endswith('.py'):
            hint = ' (configs are .py files under configs/)'
        raise CLIError(f'config file {path!r} does not exist{hint}')
    try:
        return Config.fromfile(path)
    except Exception as e:  # noqa: BLE001 - mmengine raises many kinds
        raise CLIError(f'cannot load config {path!r}: '
                       f'{type(e).__name__}: {e}') from e


def task_of(cfg: Config) -> str:
    """Which toolbox runs this config: its ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise CLIError(
            f'config has default_scope={scope!r}; mmcached tools run '
            f'configs whose default_scope is one of {TASKS} (inherit a '
            "toolbox config, e.g. _base_ = 'mmdet::...')")
    return scope


def _parts(key: str) -> List:
    return [int(p) if p.isdigit() else p for p in key.split('.')]


def check_cfg_options(cfg: Config, keys: Sequence[str]) -> None:
    """Reject ``--cfg-options`` keys whose parents do not exist in ``cfg``.

    A new leaf in an existing dict is allowed (e.g. ``model.backbone.
    init_cfg=None``), but a misspelt section (``optim_wraper.lr``) would
    otherwise be added silently and ignored.
    """
    for key in keys:
        node, path = cfg._cfg_dict, []
        parts = _parts(key)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, (list, tuple)):
                if not isinstance(part, int) or part >= len(node):
                    raise CLIError(
                        f'--cfg-options {key}: {".".join(path) or "config"} '
                        f'is a list of {len(node)}; use an index below that')
                node = node[part]
            elif isinstance(node, dict):
                if part not in node:
                    if last and path:
                        break  # a new leaf in an existing dict
                    close = difflib.get_close_matches(
                        str(part), [str(k) for k in node], n=3)
                    where = '.'.join(map(str, path)) or 'the config'
                    tip = f'; did you mean {", ".join(close)}?' \
                        if close else ''
                    raise CLIError(f'--cfg-options {key}: {where} has no key '
                                   f'{part!r}{tip}')
                node = node[part]
            else:
                raise CLIError(
                    f'--cfg-options {key}: {".".join(map(str, path))} is '
                    f'a {type(node).__name__}, not a dict')
            path.append(str(part))


def toolbox_script(task: str, name: str) -> str:
    """Path of a toolbox's own tool script, e.g. mmdet's tools/train.py."""
    module = __import__(task)
    path = osp.join(osp.dirname(module.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise CLIError(
            f'{task} has no {name} at {path}; install {task} from its wheel '
            '(pip install, as tools/setup_env.sh does), not from a source '
            'checkout without .mim')
    return path


def forward_args(args, spec: Sequence) -> List[str]:
    """Rebuild a command line from parsed ``args`` for the flags in ``spec``
    ((dest, flag, kind) with kind 'pos', 'flag', 'value' or 'opt')."""
    argv = []
    for dest, flag, kind in spec:
        value = getattr(args, dest)
        if kind == 'pos':
            argv.append(value)
        elif kind == 'flag':
            if value:
                argv.append(flag)
        elif value is not None:
            if kind == 'opt' and value == 'auto':
                argv.append(flag)  # bare --resume means auto
            else:
                argv += [flag, str(value)]
    return argv


def toolbox_argv(args, spec: Sequence, task: str) -> List[str]:
    """The command line for ``task``'s own tool: the flags of ``spec``
    ((dest, flag, kind, 'task task')) that ``task`` knows, plus the raw
    ``--cfg-options``. A flag only the other toolbox knows is an error."""
    known = []
    for dest, flag, kind, tasks in spec:
        if task in tasks.split():
            known.append((dest, flag, kind))
        elif getattr(args, dest):
            raise CLIError(f'{flag} is only for {tasks} configs; this is an '
                           f'{task} config')
    argv = forward_args(args, known)
    if getattr(args, 'cfg_options', None):
        argv += ['--cfg-options'] + list(args.cfg_options)
    return argv


def parse_tool_args(parser, argv=None):
    """Add the flags both tools share (``--cfg-options``, ``--launcher``,
    ``--local-rank``) to ``parser`` and parse; ``LOCAL_RANK`` is exported for
    launchers that pass ``--local-rank`` instead of setting it."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        metavar='KEY=VALUE',
        help='override config settings, e.g. train_cfg.max_epochs=2; keys '
        'must exist in the config (a new leaf in an existing dict is allowed)')
    parser.add_argument(
        '--launcher',
        default='none',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def option_keys(options: Optional[Sequence[str]]) -> List[str]:
    """Keys of raw ``--cfg-options`` items (``key=value``)."""
    keys = []
    for item in options or []:
        if '=' not in item:
            raise CLIError(
                f'--cfg-options takes key=value items, got {item!r}')
        keys.append(item.split('=', 1)[0])
    return keys


def run_toolbox(task: str, name: str, argv: List[str]) -> None:
    """Run ``<task>/.mim/tools/<name>`` as ``__main__`` with ``argv``."""
    script = toolbox_script(task, name)
    sys.argv = [script] + argv
    runpy.run_path(script, run_name='__main__')


def main_guard(main):
    """Print CLIError as a one-line message and exit 2 (like argparse)."""
    try:
        main()
    except CLIError as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)


__all__ = [
    'CLIError', 'load_config', 'task_of', 'check_cfg_options', 'option_keys',
    'toolbox_script', 'forward_args', 'toolbox_argv', 'run_toolbox',
    'parse_tool_args', 'main_guard'
]
