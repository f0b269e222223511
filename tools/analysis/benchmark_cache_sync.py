"""Cache synchronisation across ranks: collectives per training step and
their time, one blocking all_reduce per cached layer (the old way) against
one bucketed collective per step launched when the backbone's forward ends
(:mod:`mmcached.models.layers.cache_sync`), measured in one run.

Starts ``--ranks`` processes on this machine (gloo, CPU; forked), wraps a
cached backbone in DDP in each, and times ``--steps`` forward+backward
steps per variant, the variants interleaved step by step so that drift of
a shared machine hits them alike. Per step: the collectives the caches
start (DDP's own gradient all-reduces are not counted), the time the
training step waits for them (per layer: inside the blocking calls;
bucketed: at the end of the backward, what is left of the collective after
overlapping the backward), and the step's time. Finally checks that both
ways leave the same caches on every rank.

Example::

    python tools/analysis/benchmark_cache_sync.py --backbone swin --steps 5
"""
import argparse
import copy
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

BACKBONES = {
    # Swin-T: 12 cached blocks; PVT-Tiny: 8; DeiT-Tiny: 12
    'swin': dict(type='CachedSwin', arch='tiny', pretrain_img_size=224),
    'pvt': dict(type='CachedPVT', arch='tiny', pretrain_img_size=224),
    'vit': dict(type='CachedViT', arch='deit-tiny', img_size=224),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--backbone', choices=sorted(BACKBONES), default='swin')
    parser.add_argument('--ranks', type=int, default=2)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--batch-size', type=int, default=1, help='per rank')
    parser.add_argument(
        '--img-size',
        type=int,
        default=64,
        help='input size (the caches keep their 224 px size)')
    parser.add_argument(
        '--threads', type=int, default=1, help='torch threads per rank')
    return parser.parse_args(argv)


class Meter:
    """Counts and times the collectives the caches start."""

    def __init__(self):
        self.calls = 0
        self.wait = 0.

    def timed(self, fn):

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.wait += time.perf_counter() - start

        return wrapper


def worker(rank, args, init_file, out_file):
    import mmcached  # noqa: F401 - registrations
    from mmcached.models.layers import cache_sync
    from mmcached.registry import MODELS
    torch.set_num_threads(args.threads)
    dist.init_process_group(
        'gloo',
        init_method=f'file://{init_file}',
        rank=rank,
        world_size=args.ranks)
    sync = cache_sync.cache_sync()
    meter = Meter()
    all_reduce, wait = dist.all_reduce, cache_sync.CacheSync.wait

    def counted_all_reduce(tensor, *a, **k):
        meter.calls += 1
        if k.get('async_op'):
            return all_reduce(tensor, *a, **k)
        return meter.timed(all_reduce)(tensor, *a, **k)

    dist.all_reduce = counted_all_reduce
    cache_sync.CacheSync.wait = meter.timed(wait)
    try:
        torch.manual_seed(0)
        model = MODELS.build(BACKBONES[args.backbone])
        models = dict(
            per_layer=nn.parallel.DistributedDataParallel(
                copy.deepcopy(model)),
            bucketed=nn.parallel.DistributedDataParallel(model))
        stats = {name: dict(calls=[], wait=[], step=[]) for name in models}
        g = torch.Generator().manual_seed(rank)
        for step in range(args.warmup + args.steps):
            x = torch.randn(
                args.batch_size, 3, args.img_size, args.img_size, generator=g)
            for name, ddp in models.items():
                sync.bucketed = name == 'bucketed'
                torch.manual_seed(step)  # the same drop path in both
                meter.calls, meter.wait = 0, 0.
                dist.barrier()
                start = time.perf_counter()
                outs = ddp(x)
                sum(o.float().mean() for o in outs).backward()
                elapsed = time.perf_counter() - start
                if step >= args.warmup:
                    stats[name]['calls'].append(meter.calls)
                    stats[name]['wait'].append(meter.wait)
                    stats[name]['step'].append(elapsed)
        sync.bucketed = True
        dist.all_reduce = all_reduce
        caches = {
            name: [
                v for k, v in ddp.module.state_dict().items()
                if k.endswith('cache.memory')
            ]
            for name, ddp in models.items()
        }
        gathered = [None] * args.ranks
        dist.all_gather_object(gathered, caches)
        if rank == 0:
            torch.save(
                dict(
                    stats=stats,
                    caches=gathered,
                    numel=sum(c.numel() for c in caches['bucketed'])),
                out_file)
    finally:
        dist.all_reduce = all_reduce
        cache_sync.CacheSync.wait = wait
        dist.destroy_process_group()


def main(argv=None):
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out_file = os.path.join(tmp, 'out.pt')
        mp.start_processes(
            worker,
            args=(args, os.path.join(tmp, 'init'), out_file),
            nprocs=args.ranks,
            join=True,
            start_method='fork')
        res = torch.load(out_file, weights_only=False)
    stats, caches = res['stats'], res['caches']
    n_caches = len(caches[0]['bucketed'])
    print(f'{args.backbone}: {n_caches} cached layers, {res["numel"]} cache '
          f'values; {args.ranks} ranks (gloo, CPU), batch {args.batch_size} '
          f'per rank, {args.img_size} px, {args.steps} steps (median)\n')
    print('| cache sync | collectives / step | waiting for them (ms) | '
          'step (ms) |')
    print('|---|---|---|---|')
    for name, s in stats.items():
        print(f'| {name.replace("_", " ")} | '
              f'{statistics.median(s["calls"]):.0f} | '
              f'{1e3 * statistics.median(s["wait"]):.1f} | '
              f'{1e3 * statistics.median(s["step"]):.0f} |')
    same = all(
        torch.equal(a, b) for rank in caches
        for a, b in zip(rank['bucketed'], rank['per_layer'])) and all(
            torch.equal(a, b) for rank in caches[1:]
            for a, b in zip(rank['bucketed'], caches[0]['bucketed']))
    print(f'\ncaches identical on every rank and to the per-layer way: '
          f'{same}')
    if not same:
        sys.exit(1)


if __name__ == '__main__':
    main()
