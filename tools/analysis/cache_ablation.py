"""Evaluate a trained GRC model as trained, with its caches emptied, and with
its mix forced to 0: does the trained model use its cache?

    python tools/analysis/cache_ablation.py CONFIG CHECKPOINT [--out F.json]

The config's test loop runs once per variant on the same loaded weights:

- ``trained``: as saved;
- ``cache zeroed``: every GRC cache buffer set to zeros (the state a
  fine-tuning run starts from with ``reset_cache``); the gates still update
  it from each image, as in any evaluation;
- ``cache attention 0``: the cache attention's output set to 0 (its
  output projection zeroed), the mix weights kept: each head's output is
  (1 - sigma(lam)) times its self-attention, plus the positional term;
- ``mix 0``: sigma(lam) = 0 in every layer, so each head's output is its
  self-attention alone, at full weight (the released positional term
  stays);
- ``mix 0, no pos``: the same, and the positional conv's term removed too:
  the host's attention alone.

A model whose figure barely moves without its cache attention is not using
it. Prints a Markdown table and, with ``--out``, writes the metrics as JSON.
"""
import argparse
import json
import os.path as osp

from mmcached.utils.cli import CLIError, load_config, main_guard


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help="the trained model's config")
    p.add_argument('checkpoint', help='its checkpoint')
    p.add_argument('--work-dir', help='default: work_dirs/cache_ablation')
    p.add_argument('--out', help='write the metrics here (JSON)')
    p.add_argument(
        '--test-indices',
        type=int,
        metavar='N',
        help='evaluate on the first N test images only (a smoke run)')
    return p.parse_args(argv)


def _grc_layers(model):
    from mmcached.models.layers import GRCAttention
    return [m for m in model.modules() if isinstance(m, GRCAttention)]


def variants(layers):
    """(name, how to set the model) in order; each applies on top of the
    trained weights (restored between variants)."""

    def zero_caches():
        for m in layers:
            m.reset_cache()

    def no_cache_attention():
        for m in layers:
            m.mem_proj.weight.data.zero_()
            m.mem_proj.bias.data.zero_()

    def mix_off():
        for m in layers:
            m.lam.data.fill_(-float('inf'))

    def mix_off_no_pos():
        mix_off()
        for m in layers:
            m.pos_conv = None

    return [('trained', lambda: None), ('cache zeroed', zero_caches),
            ('cache attention 0', no_cache_attention), ('mix 0', mix_off),
            ('mix 0, no pos', mix_off_no_pos)]


def main(argv=None):
    args = parse_args(argv)
    import copy

    from mmengine.runner import Runner

    import mmcached  # noqa: F401
    cfg = load_config(args.config)
    if not osp.isfile(args.checkpoint):
        raise CLIError(f'checkpoint {args.checkpoint!r} does not exist')
    cfg.load_from = args.checkpoint
    cfg.work_dir = args.work_dir or osp.join('work_dirs', 'cache_ablation')
    if args.test_indices:
        cfg.test_dataloader.dataset.indices = args.test_indices
    runner = Runner.from_cfg(cfg)
    metrics = {'trained': runner.test()}
    model = runner.model.module if hasattr(runner.model,
                                           'module') else runner.model
    layers = _grc_layers(model)
    if not layers:
        raise CLIError(f'{args.config}: the model has no GRC layer')
    trained = copy.deepcopy(model.state_dict())
    saved_pos = [m.pos_conv for m in layers]
    for name, apply in variants(layers)[1:]:
        model.load_state_dict(trained)
        for m, pos in zip(layers, saved_pos):
            m.pos_conv = pos
        apply()
        metrics[name] = runner.test_loop.run()
    model.load_state_dict(trained)
    # the headline metrics (COCO's per-size and per-IoU ones go to --out)
    keys = [k for k in metrics['trained'] if '_mAP_' not in k]
    print(f'\n{args.config} @ {args.checkpoint}')
    print('| variant | ' + ' | '.join(keys) + ' |')
    print('|---' * (len(keys) + 1) + '|')
    for name, m in metrics.items():
        print(f'| {name} | ' + ' | '.join(f'{float(m[k]):.4f}'
                                          for k in keys) + ' |')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(
                {
                    n: {k: float(v)
                        for k, v in m.items()}
                    for n, m in metrics.items()
                },
                f,
                indent=1)
    return metrics


if __name__ == '__main__':
    main_guard(main)
