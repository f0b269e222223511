"""Helpers behind ``tools/train.py``, ``tools/test.py`` and
``tools/toolbox.py``.

Our tools run a toolbox's own, unmodified tool (its wheel ships them under
``<package>/.mim/tools``) with the user's command line as is, after
importing mmcached (compat fixes, registrations, ``mmcached::`` configs).
The toolbox is the config's ``default_scope`` (``mmdet`` or
``mmpretrain``). Flags are parsed by the toolbox's own parser, reused, not
declared again here. Before that we check only what mmcached adds:

- the config path: a missing or broken file is a one-line error;
- ``--cfg-options`` keys: a near-miss of an existing key (a typo such as
  ``optim_wraper``) is an error with suggestions; any other key, new ones
  included, passes as the toolbox takes it;
- checkpoints (``CHECKPOINT``, ``--resume``, ``load_from``): an unreadable
  file is an error naming it, before anything is written to the work dir.
"""
import difflib
import inspect
import os
import os.path as osp
import runpy
import sys
from typing import Dict, Iterable, List, Optional, Sequence

from mmengine.config import Config

from .checkpoint import CheckpointError, check_checkpoint_file
from .suggest import did_you_mean

TASKS = ('mmdet', 'mmpretrain')
# Read by mmcached's dataset configs (configs/_base_/datasets/*.py) through
# mmengine's '{{$VAR:default}}' substitution, so it reaches every dataloader
# and evaluator path built from data_root.
DATA_ROOT_ENV = 'MMCACHED_DATA_ROOT'
# Close enough to an existing key to be a typo of it (difflib ratio).
TYPO_CUTOFF = 0.8
# the repository of an editable install (configs/, tools/)
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


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


def runner_keys() -> List[str]:
    """Top-level keys that mmengine's Runner reads besides those a config
    usually has: they are new keys, not typos."""
    from mmengine.runner import Runner
    keys = set(inspect.signature(Runner.__init__).parameters) - {'self'}
    # read with cfg.get() by the Runner and the toolboxes' tools
    keys |= {
        'model_wrapper_cfg', 'find_unused_parameters', 'compile', 'sync_bn',
        'activation_checkpointing', 'runner_type', 'custom_imports',
        'strategy', 'tta_model', 'tta_pipeline'
    }
    return sorted(keys)


def _parts(key: str) -> List:
    return [int(p) if p.isdigit() else p for p in key.split('.')]


def check_cfg_options(cfg: Config, keys: Iterable, known_top=()) -> None:
    """Reject ``--cfg-options`` keys that are typos of existing ones.

    A key may add anything the toolbox's own tool would add (a new leaf, a
    new section, a new top-level key such as ``find_unused_parameters``),
    but a new key within a few letters of an existing sibling
    (``optim_wraper``, ``model.backbon``, ``train_cfg.max_epoch``) would be
    added silently and ignored, so it is an error that names the existing
    key. ``known_top`` are top-level keys the Runner reads (not typos
    themselves, and compared against). Lists must be indexed within their
    length, and a value that is not a dict has no keys, as mmengine's
    ``merge_from_dict`` requires.
    """
    for key in keys:
        node, path = cfg._cfg_dict, []
        for part in _parts(key):
            where = '.'.join(map(str, path)) or 'the config'
            if isinstance(node, (list, tuple)):
                if not isinstance(part, int) or part >= len(node):
                    raise CLIError(
                        f'--cfg-options {key}: {where} is a list of '
                        f'{len(node)}; use an index below {len(node)}, or '
                        f'set the whole list: {where}="[...]"')
                node = node[part]
            elif isinstance(node, dict):
                if part in node:
                    node = node[part]
                else:
                    siblings = [str(k) for k in node]
                    if not path:
                        if part in known_top:
                            break
                        siblings += [k for k in known_top if k not in node]
                    close = [
                        c for c in difflib.get_close_matches(
                            str(part), siblings, n=3, cutoff=TYPO_CUTOFF)
                        if c != part
                    ]
                    if close:
                        raise CLIError(
                            f'--cfg-options {key}: {where} has no key '
                            f'{part!r}; did you mean {" or ".join(close)}?')
                    break  # a new key: the toolbox adds it as given
            elif node is None:
                raise CLIError(
                    f'--cfg-options {key}: {where} is None, so it has no '
                    f'key {part!r}; set {where} itself in a config that '
                    'inherits this one')
            else:
                raise CLIError(f'--cfg-options {key}: {where} is a '
                               f'{type(node).__name__}, not a dict')
            path.append(str(part))


def toolbox_script(task: str, name: str) -> str:
    """Path of a toolbox's own tool script, e.g. mmdet's tools/train.py."""
    module = __import__(task)
    root = osp.join(osp.dirname(module.__file__), '.mim', 'tools')
    path = osp.join(root, name)
    if not osp.isfile(path) and osp.isdir(root):
        raise CLIError(f'{task} has no tool {name!r}' +
                       (tool_hint(name, shipped_tools(root))
                        or '; see python tools/toolbox.py --list'))
    if not osp.isfile(path):
        raise CLIError(
            f'{task} has no tool {name!r} (looked for {path}); the tools it '
            f'ships are under {osp.dirname(path)}. Install {task} from its '
            'wheel (pip install, as tools/setup_env.sh does), not from a '
            'source checkout without .mim')
    return path


def shipped_tools(root: str) -> List[str]:
    """The Python tools under a toolbox's ``tools/`` folder ``root``, as
    paths relative to it."""
    found = []
    for folder, _, files in os.walk(root):
        found += [
            osp.relpath(osp.join(folder, f), root) for f in files
            if f.endswith('.py') and '__pycache__' not in folder
        ]
    return sorted(found)


def tool_hint(name: str, tools: Sequence[str]) -> str:
    """'; did you mean ...?' for a tool path: the tools of the same file
    name in another folder first, then near misses of the whole path."""
    same_file = [t for t in tools if osp.basename(t) == osp.basename(name)]
    if same_file:
        return f'; did you mean {" or ".join(same_file)}?'
    hint = did_you_mean(name, tools)
    return hint or did_you_mean(
        osp.basename(name), [osp.basename(t) for t in tools])


def config_arg(argv: Sequence[str]) -> Optional[str]:
    """The config among the arguments: the first positional ``*.py``."""
    for arg in argv:
        if arg.endswith('.py') and not arg.startswith('-') and '=' not in arg:
            return arg
    return None


def toolbox_args(script: str, argv: Sequence[str]):
    """Parse ``argv`` with the ``parse_args()`` of a toolbox's tool script
    (its own flags, defaults and errors; ``--help`` prints its help)."""
    namespace = runpy.run_path(script, run_name='mmcached_parse_args')
    saved = sys.argv
    sys.argv = [script] + list(argv)
    try:
        return namespace['parse_args']()
    finally:
        sys.argv = saved


def parse_toolbox_command(argv: Sequence[str], tool: str, usage: str,
                          doc: str):
    """``(cfg, script, args)`` for our ``tools/<tool> argv``: the config,
    the toolbox's own ``tool`` script and its parse of ``argv``, with the
    ``--cfg-options`` keys checked. None after printing ``usage`` and the
    tool's ``doc`` (from its third paragraph) where no config is given and
    help is asked for, or nothing is."""
    config = config_arg(argv)
    if config is None:
        if not argv or {'-h', '--help'} & set(argv):
            print(f'usage: {usage}\n\n' + doc.split('\n\n', 2)[2].strip())
            return None
        raise CLIError('give a config file (CONFIG.py) as the first argument')
    cfg = load_config(config)
    script = toolbox_script(task_of(cfg), tool)
    args = toolbox_args(script, argv)
    if args.config != config:
        cfg = load_config(args.config)
    if args.cfg_options:
        check_cfg_options(cfg, args.cfg_options, runner_keys())
    return cfg, script, args


def run_toolbox(script: str, argv: Sequence[str]) -> None:
    """Run a toolbox's tool script as ``__main__`` with ``argv``, as
    ``python script argv`` would (its folder first on ``sys.path``)."""
    sys.argv = [script] + list(argv)
    sys.path.insert(0, osp.dirname(script))
    runpy.run_path(script, run_name='__main__')


def apply_data_root(options: Optional[Dict]) -> None:
    """``--cfg-options data_root=DIR``: the toolbox would set the variable
    only, not the dataloaders filled in from it; mmcached's dataset configs
    read ``MMCACHED_DATA_ROOT``, so set that for the toolbox's tool."""
    if options and options.get('data_root'):
        os.environ[DATA_ROOT_ENV] = str(options['data_root']).rstrip('/')


def work_dir_of(cfg: Config, args) -> str:
    """The work dir the toolbox's tool will use (same rule as theirs)."""
    if getattr(args, 'work_dir', None):
        return args.work_dir
    if cfg.get('work_dir'):
        return cfg.work_dir
    return osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])


def check_resume(cfg: Config, args) -> None:
    """Check the checkpoint that ``--resume`` / ``load_from`` will read, so
    that an unreadable one stops the run before it writes anything."""
    resume = getattr(args, 'resume', None)
    if resume == 'auto':
        last = osp.join(work_dir_of(cfg, args), 'last_checkpoint')
        if not osp.isfile(last):
            return  # nothing to resume: the toolbox starts afresh
        with open(last) as f:
            target = f.read().strip()
        if not target:
            raise CLIError(
                f'--resume: {last} is empty (a save was interrupted); give '
                'the checkpoint to resume from: --resume PATH')
        try:
            check_checkpoint_file(target, verify=False)
        except CheckpointError as e:
            raise CLIError(f'--resume: {last} names {target!r}, which '
                           f'cannot be used: {e}') from e
    elif resume and '://' not in resume:
        check_checkpoint_file(resume, verify=False)
    elif cfg.get('load_from') and '://' not in str(cfg.load_from):
        check_checkpoint_file(cfg.load_from, verify=False)


def check_backbone_checkpoint(cfg: Config, config: str) -> None:
    """A ``Pretrained`` backbone checkpoint that is a missing local file is
    an error naming the key, the config variable that holds it and how to
    give another, before the Runner is built."""
    init_cfg = cfg.get('model', {}).get('backbone', {}).get('init_cfg')
    if not isinstance(init_cfg, dict) or \
            init_cfg.get('type') != 'Pretrained':
        return
    path = init_cfg.get('checkpoint')
    if not isinstance(path, str) or '://' in path or osp.exists(path):
        return
    held_by = [
        k for k, v in cfg._cfg_dict.items() if k != 'model' and v == path
    ]
    where = f' (the config variable {held_by[0]!r} in {config})' \
        if held_by else f' (in {config})'
    parts = path.replace('\\', '/').split('/')
    trainer = ''
    if len(parts) >= 3 and parts[-3] == 'work_dirs':
        found = [
            osp.relpath(osp.join(folder, f))
            for folder, _, files in os.walk(osp.join(REPO_ROOT, 'configs'))
            for f in files if f == parts[-2] + '.py'
        ]
        if found:
            trainer = f'; it is what `python tools/train.py {found[0]}` saves'
    raise CLIError(
        f'model.backbone.init_cfg.checkpoint {path!r}{where} does not exist'
        f'{trainer}; train that backbone first, or give its checkpoint: '
        '--cfg-options model.backbone.init_cfg.checkpoint=PATH')


def main_guard(main):
    """Print a CLIError or CheckpointError as a one-line message and exit 2
    (like argparse) instead of a traceback."""
    try:
        main()
    except (CLIError, CheckpointError) as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)


__all__ = [
    'CLIError', 'load_config', 'task_of', 'runner_keys', 'check_cfg_options',
    'toolbox_script', 'config_arg', 'toolbox_args', 'parse_toolbox_command',
    'run_toolbox', 'apply_data_root', 'work_dir_of', 'check_resume',
    'main_guard', 'DATA_ROOT_ENV', 'shipped_tools', 'tool_hint',
    'check_backbone_checkpoint'
]
