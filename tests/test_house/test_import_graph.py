"""The library's layering (docs/cache_layers.md, "Where things are"): no
import circle between mmcached's modules, and ``mmcached.utils`` (the ground
floor) imports nothing above it. Read from the source with ``ast``, so the
imports inside functions count too."""
import ast
import os.path as osp
from pathlib import Path

import mmcached

ROOT = Path(osp.dirname(mmcached.__file__))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> list:
    if node.level:
        base = module.split('.')
        base = base[:len(base) - node.level + (1 if is_pkg else 0)]
        target = '.'.join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ''
    # `from pkg import sub` may name a submodule
    return [target] + [f'{target}.{a.name}' for a in node.names]


def import_graph() -> dict:
    """mmcached module -> the mmcached modules it imports."""
    files = [p for p in ROOT.rglob('*.py') if '.mim' not in p.parts]
    modules = {_module_name(p): p for p in files}
    graph = {}
    for name, path in modules.items():
        is_pkg = path.name == '__init__.py'
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                cands = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                cands = _resolve(name, is_pkg, node)
            else:
                continue
            targets.update(c for c in cands if c in modules and c != name)
        graph[name] = targets
    return graph


def _cycle(graph):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            # a package's __init__ importing its own submodules is how
            # packages export; the submodule importing the package back is
            # the circle we look for, so only parent -> child edges skip
            if m.startswith(n + '.'):
                continue
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_circle():
    graph = import_graph()
    assert 'mmcached.models.layers.memory_caching.chunk' in graph
    cycle = _cycle(graph)
    assert cycle is None, ' -> '.join(cycle)


def test_the_detector_finds_a_circle():
    assert _cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert _cycle({'p': {'p.x'}, 'p.x': set()}) is None


def test_utils_is_the_ground_floor():
    above = ('mmcached.models', 'mmcached.analysis', 'mmcached.engine',
             'mmcached.datasets')
    bad = {
        m: sorted(t for t in targets if t.startswith(above))
        for m, targets in import_graph().items()
        if m.startswith('mmcached.utils')
    }
    assert not {m: t for m, t in bad.items() if t}


def test_analysis_sits_above_the_models():
    graph = import_graph()
    models = [m for m in graph if m.startswith('mmcached.models')]
    assert not [(m, t) for m in models for t in graph[m]
                if t.startswith(('mmcached.analysis', 'mmcached.engine'))]
