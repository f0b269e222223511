"""Run an embedded task for a cached model and its twins over several seeds,
and say how they compare: mean +- std per model, the paired difference per
seed, and how many seeds the cached model wins.

    python tools/analysis/seed_study.py digits --seeds 0 1 2
    python tools/analysis/seed_study.py digits-det --seeds 0 1 2 --jobs 2

Tasks and their models (``--models`` picks some):

- ``digits``: the mini ViT on scikit-learn's digits; ``cached`` (GRC),
  ``uncached``, ``mc`` (Memory Caching) and ``linear`` (its plain linear
  memory: the same layer with one segment, nothing cached). Pairs:
  cached - uncached, mc - linear.
- ``digits-det``: the paper's protocol at embedded scale: a mini PVT
  pretrained by classification on single digits, then Mask R-CNN fine-tuned
  from it (caches reset) on canvases of several digits; ``cached`` and
  ``uncached`` (each pretrained and fine-tuned as itself).
- ``shapes``: Mask R-CNN on a mini PVT from scratch on generated shapes;
  ``cached`` and ``uncached``.

Each run is ``tools/misc/run_embedded.py`` in its own process, seeded with
``--seed`` (initial weights, data order and augmentation; the data sets are
fixed), in ``<work-dir>/<task>/<model>/seed<S>/``. A run whose
``embedded_result.json`` is there with the same settings is not run again,
so an interrupted study continues where it stopped. ``--jobs 2`` runs two
at a time (``--threads`` each; the two models of a pair are started side by
side, so machine drift hits both). Rows go to ``<work-dir>/<task>.csv``
(one per run) and the summary to ``<work-dir>/<task>.json``.

Exactness: the same code on the same machine (CPU model and thread count)
gives the same figures; another CPU or thread count may not (floating-point
reductions differ), which is why claims are means over seeds.
"""
import argparse
import csv
import json
import math
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
EMB = 'configs/embedded/'


class Model:
    """One model of a task: its config(s), run in order; a later stage
    starts from the previous stage's last checkpoint (``init_from``: the
    config key that takes it)."""

    def __init__(self, *stages, init_from=None):
        self.stages = stages
        self.init_from = init_from


TASKS: Dict[str, dict] = {
    'digits':
    dict(
        metrics=['accuracy/top1'],
        models=dict(
            cached=Model(EMB + 'cached-vit-mini-p8_1xb64-40e_digits.py'),
            uncached=Model(EMB + 'vit-mini-p8_1xb64-40e_digits.py'),
            mc=Model(EMB + 'mc-vit-mini-p8_1xb64-40e_digits.py'),
            linear=Model(EMB + 'linear-vit-mini-p8_1xb64-40e_digits.py')),
        pairs=[('cached', 'uncached'), ('mc', 'linear')]),
    'digits-det':
    dict(
        metrics=['coco/bbox_mAP', 'coco/segm_mAP'],
        models=dict(
            cached=Model(
                EMB + 'cached-pvt-mini_1xb64-40e_digits.py',
                EMB + 'mask-rcnn_cached-pvt-mini_fpn_1xb4-6e_digits-canvas.py',
                init_from='model.backbone.init_cfg.checkpoint'),
            uncached=Model(
                EMB + 'pvt-mini_1xb64-40e_digits.py',
                EMB + 'mask-rcnn_pvt-mini_fpn_1xb4-6e_digits-canvas.py',
                init_from='model.backbone.init_cfg.checkpoint')),
        pairs=[('cached', 'uncached')]),
    'shapes':
    dict(
        metrics=['coco/bbox_mAP', 'coco/segm_mAP'],
        models=dict(
            cached=Model(EMB +
                         'mask-rcnn_cached-pvt-mini_fpn_1xb4-10e_shapes.py'),
            uncached=Model(EMB + 'mask-rcnn_pvt-mini_fpn_1xb4-10e_shapes.py')),
        pairs=[('cached', 'uncached')]),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('task', choices=sorted(TASKS))
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument(
        '--models',
        nargs='+',
        help="default: all of the task's models. NAME=CONFIG adds a model "
        'of your own (an ablation: a config that inherits one of the '
        "task's), run as the task's last stage after its earlier ones")
    p.add_argument(
        '--pairs',
        nargs='+',
        help="A:B pairs to compare (default: the task's, and every added "
        "model against the task's first pair's second model, e.g. "
        'uncached)')
    p.add_argument(
        '--epochs',
        type=int,
        help='override every stage\'s max_epochs (a smoke run)')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='passed to every run (every stage), e.g. '
        'train_dataloader.dataset.indices=64')
    p.add_argument('--jobs', type=int, default=1, help='runs at a time')
    p.add_argument(
        '--threads',
        type=int,
        help='torch threads per run (default: cores / jobs)')
    p.add_argument('--work-dir', default='work_dirs/seed_study')
    p.add_argument(
        '--out',
        help='rows go to OUT.csv, the summary to OUT.json (default: '
        '<work-dir>/<task>)')
    p.add_argument(
        '--summary-only',
        action='store_true',
        help='run nothing; summarise the runs already there')
    args = p.parse_args(argv)
    task = TASKS[args.task]
    args.added = {}
    models = []
    for m in args.models or list(task['models']):
        name, _, config = m.partition('=')
        if config:
            if name in task['models']:
                p.error(f'{name} is a model of {args.task}; name yours '
                        'otherwise')
            if not osp.isfile(osp.join(REPO, config)):
                p.error(f'{m}: no config {config}')
            args.added[name] = config
        elif name not in task['models']:
            p.error(f'{args.task} has no model {name!r}; its models: '
                    f'{list(task["models"])} (or NAME=CONFIG)')
        models.append(name)
    args.models = models
    base = task['pairs'][0][1]
    args.pairs = [tuple(x.split(':', 1)) for x in args.pairs] \
        if args.pairs else task['pairs'] + [(m, base) for m in args.added]
    if args.jobs < 1:
        p.error('--jobs must be >= 1')
    if args.threads is None:
        args.threads = max(1, (os.cpu_count() or 1) // args.jobs)
    return args


def cpu_name() -> str:
    """The CPU model, as /proc/cpuinfo names it (else platform's guess)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _settings(args, stage_cfg, stage_options) -> dict:
    return dict(
        config=stage_cfg,
        epochs=args.epochs,
        threads=args.threads,
        cfg_options=list(args.cfg_options) + stage_options)


def _stage(args, model: Model, i: int, seed: int, work: str,
           init: Optional[str], run: bool) -> dict:
    """Run (or reuse) stage i of a model for one seed; returns its result.
    With ``run=False`` a stage not done yet raises FileNotFoundError."""
    cfg = model.stages[i]
    options = [f'{model.init_from}={init}'] if init else []
    settings = _settings(args, cfg, options)
    result_file = osp.join(work, 'embedded_result.json')
    if osp.isfile(result_file):
        with open(result_file) as f:
            done = json.load(f)
        if done.get('study') == settings and done.get('seed') == seed:
            return done
    if not run:
        raise FileNotFoundError(result_file)
    cmd = [
        sys.executable, 'tools/misc/run_embedded.py', cfg, '--work-dir', work,
        '--seed',
        str(seed), '--threads',
        str(args.threads)
    ]
    if args.epochs:
        cmd += ['--epochs', str(args.epochs)]
    if settings['cfg_options']:
        cmd += ['--cfg-options', *settings['cfg_options']]
    os.makedirs(work, exist_ok=True)
    log = osp.join(work, 'seed_study.log')
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    with open(log, 'w') as f:
        r = subprocess.run(
            cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=env)
    if r.returncode != 0 or not osp.isfile(result_file):
        with open(log) as f:
            tail = ''.join(f.readlines()[-15:])
        raise RuntimeError(f'run failed ({" ".join(cmd)}), log {log}:\n'
                           f'{tail}')
    with open(result_file) as f:
        done = json.load(f)
    done['study'] = settings
    with open(result_file, 'w') as f:
        json.dump(done, f, indent=1)
    return done


def model_of(args, name: str) -> Model:
    if name in args.added:  # the task's first model, its last stage swapped
        first = next(iter(TASKS[args.task]['models'].values()))
        return Model(
            *first.stages[:-1], args.added[name], init_from=first.init_from)
    return TASKS[args.task]['models'][name]


def run_model(args, name: str, seed: int, run: bool = True) -> dict:
    """All stages of one model for one seed (run, or reused where done);
    the row of its last stage, with the training time of all stages."""
    model = model_of(args, name)
    base = osp.join(args.work_dir, args.task, name, f'seed{seed}')
    init, wall, result = None, 0., None
    for i in range(len(model.stages)):
        stage_name = osp.splitext(osp.basename(model.stages[i]))[0]
        work = base if len(model.stages) == 1 else osp.join(base, stage_name)
        result = _stage(args, model, i, seed, work, init, run)
        init = result.get('checkpoint')
        wall += result['train_wall_s']
        if i + 1 < len(model.stages) and not init:
            raise RuntimeError(f'{work}: no checkpoint to start stage '
                               f'{i + 1} from')
    row = dict(
        task=args.task,
        model=name,
        seed=seed,
        config=model.stages[-1],
        train_wall_s=round(wall, 1),
        threads=result['threads'])
    row.update((m, result['metrics'].get(m, math.nan))
               for m in TASKS[args.task]['metrics'])
    return row


def _mean_std(values: List[float]) -> str:
    if not values:
        return 'n/a'
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.
    return f'{mean:.4f} +- {std:.4f}'


def summarise(task: str, rows: List[dict], pairs) -> dict:
    """Per model: mean and std (sample, n - 1) of each metric; per pair:
    the per-seed differences, their mean and std, and the wins."""
    spec = TASKS[task]
    by = {(r['model'], r['seed']): r for r in rows}
    models = list(dict.fromkeys(r['model'] for r in rows))
    out = dict(task=task, metrics=spec['metrics'], models={}, pairs=[])
    for m in models:
        mine = [r for r in rows if r['model'] == m]
        out['models'][m] = {
            metric: dict(
                values=[r[metric] for r in mine],
                seeds=[r['seed'] for r in mine],
                mean=statistics.fmean(r[metric] for r in mine),
                std=statistics.stdev(r[metric]
                                     for r in mine) if len(mine) > 1 else 0.)
            for metric in spec['metrics']
        }
        out['models'][m]['train_wall_s'] = statistics.fmean(r['train_wall_s']
                                                            for r in mine)
    for a, b in pairs:
        seeds = sorted(s for (m, s) in by if m == a and (b, s) in by)
        if not seeds:
            continue
        pair = dict(models=[a, b], seeds=seeds)
        for metric in spec['metrics']:
            diffs = [by[a, s][metric] - by[b, s][metric] for s in seeds]
            pair[metric] = dict(
                diffs=diffs,
                mean=statistics.fmean(diffs),
                std=statistics.stdev(diffs) if len(diffs) > 1 else 0.,
                wins=sum(d > 0 for d in diffs),
                ties=sum(d == 0 for d in diffs))
        out['pairs'].append(pair)
    return out


def print_summary(summary: dict, header: str) -> None:
    metrics = summary['metrics']
    print(header)
    print('| model | ' + ' | '.join(f'{m} (mean +- std)' for m in metrics) +
          ' | per seed | train s (mean) |')
    print('|---' * (len(metrics) + 3) + '|')
    for m, stats in summary['models'].items():
        per_seed = '; '.join(', '.join(f'{v:.4f}'
                                       for v in stats[metric]['values'])
                             for metric in metrics)
        print(f'| {m} | ' + ' | '.join(
            _mean_std(stats[metric]['values'])
            for metric in metrics) + f' | {per_seed} | '
              f'{stats["train_wall_s"]:.0f} |')
    for pair in summary['pairs']:
        a, b = pair['models']
        for metric in metrics:
            d = pair[metric]
            print(f'{a} - {b}, {metric}: '
                  f'{d["mean"]:+.4f} +- {d["std"]:.4f} over seeds '
                  f'{pair["seeds"]} (per seed: ' +
                  ', '.join(f'{x:+.4f}' for x in d['diffs']) +
                  f'); {a} wins {d["wins"]} of {len(d["diffs"])}' +
                  (f', {d["ties"]} ties' if d['ties'] else ''))


def main(argv=None):
    args = parse_args(argv)
    os.chdir(REPO)
    jobs = [(seed, m) for seed in args.seeds for m in args.models]
    rows = []
    machine = (f'{cpu_name()}, {os.cpu_count()} cores, {args.jobs} run(s) '
               f'at a time, {args.threads} thread(s) each')
    if not args.summary_only:
        start = time.time()
        print(
            f'[seed_study] {args.task}: {len(jobs)} runs ({machine})',
            flush=True)

        def one(job):
            seed, m = job
            t = time.time()
            row = run_model(args, m, seed)
            print(
                f'[seed_study] {m} seed {seed}: ' +
                ', '.join(f'{k} {row[k]:.4f}'
                          for k in TASKS[args.task]['metrics']) +
                f' ({time.time() - t:.0f} s)',
                flush=True)
            return row

        with ThreadPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(one, jobs))
        print(f'[seed_study] done in {time.time() - start:.0f} s')
    else:
        for seed, m in jobs:
            try:
                rows.append(run_model(args, m, seed, run=False))
            except FileNotFoundError:
                continue
    if not rows:
        raise SystemExit('seed_study: no finished run to summarise')
    for r in rows:
        r['machine'] = machine
    os.makedirs(args.work_dir, exist_ok=True)
    out = args.out or osp.join(args.work_dir, args.task)
    os.makedirs(osp.dirname(out) or '.', exist_ok=True)
    csv_path = out + '.csv'
    with open(csv_path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = summarise(args.task, rows, args.pairs)
    summary['machine'] = machine
    summary['epochs'] = args.epochs
    summary['cfg_options'] = args.cfg_options
    with open(out + '.json', 'w') as f:
        json.dump(summary, f, indent=1)
    print_summary(
        summary, f'\n{args.task}, seeds {args.seeds}, on {machine}'
        f'{", epochs " + str(args.epochs) if args.epochs else ""}:')
    print(f'rows: {csv_path}')
    return summary


if __name__ == '__main__':
    main()
