"""Run any tool that MMDetection or MMPretrain ships, with mmcached
imported first.

    python tools/toolbox.py TOOL [the tool's arguments]
    python tools/toolbox.py misc/print_config.py my_config.py
    python tools/toolbox.py analysis_tools/get_flops.py CONFIG
    python tools/toolbox.py mmdet::analysis_tools/analyze_logs.py \
        plot_curve LOG.json
    python tools/toolbox.py mmpretrain::model_converters/publish_model.py \
        IN.pth OUT.pth

TOOL is a path under the toolbox's ``tools/`` folder (its wheel ships them in
``<package>/.mim/tools``). The toolbox is the one of the config among the
arguments (its ``default_scope``), or the one named as ``mmdet::TOOL`` /
``mmpretrain::TOOL``, or the only one that has TOOL. With mmcached imported,
user configs that inherit ``mmcached::`` parse and our modules build; the
tool's own bare ``torch.load`` reads full checkpoints, as on torch < 2.6
(``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``; only load checkpoints you trust).
``python tools/toolbox.py --list`` lists the tools.
"""
import os
import os.path as osp
import sys

import mmcached  # noqa: F401 - compat fixes and registrations
from mmcached.utils.cli import (TASKS, CLIError, config_arg, load_config,
                                main_guard, run_toolbox, shipped_tools,
                                task_of, tool_hint, toolbox_script)


def tools_of(task: str):
    """The Python tools a toolbox ships, as paths under its tools/."""
    return shipped_tools(
        osp.join(osp.dirname(__import__(task).__file__), '.mim', 'tools'))


def pick_toolbox(tool: str, args) -> tuple:
    """(toolbox, tool path) for ``TOOL`` and the tool's arguments."""
    if '::' in tool:
        task, tool = tool.split('::', 1)
        if task not in TASKS:
            raise CLIError(f'{task!r} is not one of {TASKS}')
        return task, tool
    config = config_arg(args)
    if config is not None and osp.isfile(config):
        return task_of(load_config(config)), tool
    having = [t for t in TASKS if tool in tools_of(t)]
    if len(having) == 1:
        return having[0], tool
    if not having:
        hint = tool_hint(tool, sorted({t for k in TASKS for t in tools_of(k)}))
        raise CLIError(f'no toolbox ships {tool!r}' +
                       (hint or '; see python tools/toolbox.py --list'))
    raise CLIError(f'{" and ".join(having)} both ship {tool!r} and no config '
                   f'among the arguments says which: write {having[0]}::'
                   f'{tool} or {having[1]}::{tool}')


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ('-h', '--help'):
        print('usage: python tools/toolbox.py TOOL [args]\n\n' +
              __doc__.split('\n\n', 1)[1].strip())
        return
    if argv[0] == '--list':
        for task in TASKS:
            print(f'{task}:')
            print('\n'.join(f'  {t}' for t in tools_of(task)))
        return
    task, tool = pick_toolbox(argv[0], argv[1:])
    script = toolbox_script(task, tool)
    # The tools call torch.load without weights_only: as on torch < 2.6.
    os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    run_toolbox(script, argv[1:])


if __name__ == '__main__':
    main_guard(main)
