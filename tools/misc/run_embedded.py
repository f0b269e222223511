"""Train an embedded config on CPU, then report its final metrics and wall
time (how the figures in the docs were measured).

    python tools/misc/run_embedded.py \
        configs/embedded/cached-vit-mini-p8_1xb64-40e_digits.py

Writes ``<work_dir>/embedded_result.json`` with the metrics of the last
validation, the training wall time, the number of threads, the seed and the
last checkpoint. ``tools/analysis/seed_study.py`` runs it over seeds and
twins.
"""
import argparse
import json
import os
import os.path as osp
import time

from mmengine.config import DictAction


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='default: work_dirs/<config name>')
    parser.add_argument(
        '--epochs',
        type=int,
        help='override max_epochs (validates at the end)')
    parser.add_argument('--threads', type=int, help='torch threads')
    parser.add_argument(
        '--seed',
        type=int,
        help="override randomness.seed (default: the config's)")
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, as tools/train.py takes them')
    return parser.parse_args()


def _last_checkpoint(work_dir):
    """What mmengine's CheckpointHook recorded as the last checkpoint."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return f.read().strip()


def main():
    args = parse_args()
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    from mmengine.config import Config
    from mmengine.runner import Runner

    import mmcached  # noqa: F401
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.seed is not None:
        cfg.randomness = dict(cfg.get('randomness') or {}, seed=args.seed)
    name = osp.splitext(osp.basename(args.config))[0]
    cfg.work_dir = args.work_dir or osp.join('work_dirs', name)
    if args.epochs:
        cfg.train_cfg.max_epochs = args.epochs
        cfg.train_cfg.val_interval = args.epochs
    cfg.train_cfg.val_interval = cfg.train_cfg.max_epochs
    runner = Runner.from_cfg(cfg)
    from mmengine.hooks import Hook

    class _KeepMetrics(Hook):
        last = {}

        def after_val_epoch(self, runner, metrics=None):
            self.last = dict(metrics or {})

    keep = _KeepMetrics()
    runner.register_hook(keep, priority='LOWEST')
    start = time.time()
    runner.train()
    train_s = time.time() - start
    last = {k: float(v) for k, v in keep.last.items()}
    result = dict(
        config=args.config,
        epochs=cfg.train_cfg.max_epochs,
        train_wall_s=round(train_s, 1),
        threads=torch.get_num_threads(),
        seed=cfg.randomness.get('seed'),
        checkpoint=_last_checkpoint(cfg.work_dir),
        metrics=last)
    os.makedirs(cfg.work_dir, exist_ok=True)
    with open(osp.join(cfg.work_dir, 'embedded_result.json'), 'w') as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == '__main__':
    main()
