"""Multi-query associative recall (MQAR) with Memory Caching, on CPU.

The Zoology set-up (Arora et al., 2023): a sequence opens with key-value
pairs, then the keys come back as queries at power-law-distributed places
among random tokens, and the model must emit each query's value. Batches
are made on the fly from a seeded generator; nothing is downloaded.

Every model is the same small 2-layer network (token embedding; per layer
pre-norm, a short causal depthwise conv, the token mixer, pre-norm MLP;
the loss only at query positions); only the mixer differs:

- ``attention``: causal softmax attention (SDPA);
- ``linear``: the plain linear memory (MC with one segment);
- ``mc-residual`` / ``mc-grm`` / ``mc-soup`` / ``mc-ssc``: MC over the
  linear memory with segments of ``--segment-size`` tokens;
- ``mc-deep-grm``: MC with GRM over the deep memory;
- ``mc-grm-restart``: ``mc-grm`` with the other segment start mode
  (``restart`` unless ``--segment-start restart``, then ``checkpoint``).

Prints a Markdown table: query accuracy (mean over seeds, with each seed's)
per model and setting, and the training wall time.

The default run (2 settings x 8 models, one seed) took about 100 minutes
of training on one thread of a shared, busy 2-core machine, a third of it
the deep model (docs/mc.md);
``--models`` / ``--settings`` / ``--steps`` cut it down. Examples::

    python tools/analysis/mqar.py
    python tools/analysis/mqar.py --settings 256:16 --models attention linear \
        mc-grm mc-residual
    python tools/analysis/mqar.py --settings 256:32 --vocab 128 --seeds 0 1 2
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from benchmark_mc import SoftmaxAttention

from mmcached.models.layers.memory_caching import MemoryCachingAttention

MODELS = ('attention', 'linear', 'mc-residual', 'mc-grm', 'mc-soup', 'mc-ssc',
          'mc-deep-grm', 'mc-grm-restart')


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        '--settings',
        nargs='+',
        default=['64:8', '128:16'],
        help='sequence length:key-value pairs')
    p.add_argument('--models', nargs='+', default=list(MODELS), choices=MODELS)
    p.add_argument('--seeds', nargs='+', type=int, default=[0])
    p.add_argument(
        '--log-every',
        type=int,
        default=0,
        help='print the training loss every N steps')
    p.add_argument('--steps', type=int, default=1000)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--lr', type=float, default=3e-3)
    p.add_argument('--eval-sequences', type=int, default=512)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--vocab', type=int, default=64)
    # the models
    p.add_argument('--dim', type=int, default=64)
    p.add_argument('--heads', type=int, default=4)
    p.add_argument('--segment-size', type=int, default=16)
    p.add_argument(
        '--segment-start',
        default='checkpoint',
        choices=('checkpoint', 'restart'))
    p.add_argument('--top-k', type=int, default=2)
    p.add_argument('--deep-chunk', type=int, default=16)
    p.add_argument(
        '--deep-lr',
        type=float,
        default=0.03,
        help='inner step size of the deep memory')
    return p.parse_args()


def mqar_batch(batch, length, pairs, vocab, gen, power_a=0.01):
    """(inputs, labels) (batch, length): Zoology's MQAR. Keys from
    [1, vocab/2), values from [vocab/2, vocab), pairs first; each key comes
    back once as a query at a power-law gap; label -100 except at queries,
    where it is the key's value; other positions hold random tokens."""
    half = vocab // 2
    context = 2 * pairs
    space = (length - context) // 2
    if space < pairs or half - 1 < pairs:
        raise ValueError(f'length {length} / vocab {vocab} too small for '
                         f'{pairs} pairs')
    keys = torch.argsort(torch.rand(batch, half - 1, generator=gen),
                         1)[:, :pairs] + 1
    values = torch.argsort(torch.rand(batch, vocab - half, generator=gen),
                           1)[:, :pairs] + half
    kv = torch.stack([keys, values], 2).flatten(1)
    p = power_a * torch.arange(
        1, space + 1, dtype=torch.float64)**(
            power_a - 1)
    gaps = torch.multinomial(
        (p / p.sum()).expand(batch, -1).float(),
        pairs,
        replacement=False,
        generator=gen)
    queries = torch.zeros(batch, length - context + 1, dtype=torch.long)
    queries.scatter_(1, gaps * 2, keys)
    inputs = torch.cat([kv, queries], 1)[:, :-1]
    labels = torch.full((batch, length + 1), -100, dtype=torch.long)
    labels.scatter_(1, gaps * 2 + context + 1, values)
    labels = labels[:, 1:]
    noise = torch.randint(vocab, inputs.shape, generator=gen)
    inputs = torch.where(inputs == 0, noise, inputs)
    return inputs, labels


def make_mixer(name, dim, heads, length, args):
    if name == 'attention':
        return SoftmaxAttention(dim, heads)
    kw = dict(segment_size=args.segment_size, segment_start=args.segment_start)
    if name == 'linear':
        kw = dict(segment_size=length, aggregation='residual')
    elif name == 'mc-ssc':
        kw.update(aggregation='ssc', top_k=args.top_k)
    elif name == 'mc-grm-restart':
        other = dict(checkpoint='restart', restart='checkpoint')
        kw.update(aggregation='grm', segment_start=other[args.segment_start])
    elif name == 'mc-deep-grm':
        kw.update(
            memory='deep',
            aggregation='grm',
            chunk_size=args.deep_chunk,
            inner_lr=args.deep_lr)
    else:
        kw.update(aggregation=name[3:])
    # PyTorch's default init, as the attention baseline's
    return MemoryCachingAttention(dim, heads, **kw)


class Block(nn.Module):

    def __init__(self, mixer, dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        # a short causal conv lets every model see the previous tokens
        self.conv = nn.Conv1d(dim, dim, 4, groups=dim, padding=3)
        self.mixer = mixer
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        h = self.norm1(x)
        h = self.conv(h.transpose(1, 2))[..., :x.shape[1]].transpose(1, 2)
        x = x + self.mixer(h)
        return x + self.mlp(self.norm2(x))


class Model(nn.Module):

    def __init__(self, name, vocab, dim, heads, length, args, layers=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(
            Block(make_mixer(name, dim, heads, length, args), dim)
            for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, inputs, labels):
        x = self.embed(inputs)
        for block in self.blocks:
            x = block(x)
        at = labels != -100  # the head runs at query positions only
        return self.head(self.norm(x[at])), labels[at]


def run(name, length, pairs, seed, args):
    torch.manual_seed(seed)
    model = Model(name, args.vocab, args.dim, args.heads, length, args)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, args.lr, total_steps=args.steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(1000 + seed)
    t0 = time.perf_counter()
    model.train()
    for it in range(args.steps):
        inputs, labels = mqar_batch(args.batch_size, length, pairs, args.vocab,
                                    gen)
        logits, target = model(inputs, labels)
        loss = F.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if args.log_every and (it + 1) % args.log_every == 0:
            print(
                f'  {name} step {it + 1}: loss {loss.item():.3f}', flush=True)
    wall = time.perf_counter() - t0
    model.eval()
    eval_gen = torch.Generator().manual_seed(10**6 + seed)
    correct = total = 0
    with torch.no_grad():
        for _ in range(math.ceil(args.eval_sequences / args.batch_size)):
            inputs, labels = mqar_batch(args.batch_size, length, pairs,
                                        args.vocab, eval_gen)
            logits, target = model(inputs, labels)
            correct += (logits.argmax(-1) == target).sum().item()
            total += target.numel()
    return correct / total, wall, loss.item()


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    settings = [tuple(int(v) for v in s.split(':')) for s in args.settings]
    results = {}
    for length, pairs in settings:
        for name in args.models:
            accs, walls = [], []
            for seed in args.seeds:
                acc, wall, loss = run(name, length, pairs, seed, args)
                accs.append(acc)
                walls.append(wall)
                print(
                    f'L={length} pairs={pairs} {name} seed={seed}: '
                    f'acc {acc:.3f} final loss {loss:.3f} '
                    f'{wall:.0f}s',
                    flush=True)
            results[(length, pairs, name)] = (accs, walls)
    print(f'\nMQAR, {args.steps} steps x {args.batch_size} sequences, '
          f'dim {args.dim}, {args.heads} heads, vocab {args.vocab}, '
          f'segments of {args.segment_size} ({args.segment_start}), '
          f'ssc top_k {args.top_k}, seeds {args.seeds}, '
          f'{args.threads} thread(s)\n')
    cols = [f'L={length}, {pairs} pairs' for length, pairs in settings]
    print('| model | ' + ' | '.join(cols) + ' | train time (s) |')
    print('|---' * (len(cols) + 2) + '|')
    for name in args.models:
        cells, total = [], 0.
        for length, pairs in settings:
            accs, walls = results[(length, pairs, name)]
            total += sum(walls)
            cell = f'{statistics.mean(accs):.3f}'
            if len(accs) > 1:
                cell += ' (' + ', '.join(f'{a:.2f}' for a in accs) + ')'
            cells.append(cell)
        print(f'| {name} | ' + ' | '.join(cells) + f' | {total:.0f} |')


if __name__ == '__main__':
    main()
