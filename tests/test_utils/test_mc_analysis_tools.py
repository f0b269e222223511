"""The MC analysis tools: the MQAR data are Zoology's task, and both tools
run end to end at toy sizes (their figures are measured by hand)."""
import torch


def test_mqar_batch_is_multi_query_recall(load_tool):
    mqar = load_tool('tools/analysis/mqar.py')
    gen = torch.Generator().manual_seed(0)
    B, L, P, V = 16, 64, 8, 64
    inputs, labels = mqar.mqar_batch(B, L, P, V, gen)
    assert inputs.shape == labels.shape == (B, L)
    for x, y in zip(inputs, labels):
        keys, values = x[:2 * P:2], x[1:2 * P:2]
        assert len(set(keys.tolist())) == P
        assert ((keys >= 1) & (keys < V // 2)).all()
        assert ((values >= V // 2) & (values < V)).all()
        asked = (y != -100).nonzero()[:, 0]
        assert len(asked) == P and (asked >= 2 * P).all()
        pairs = dict(zip(keys.tolist(), values.tolist()))
        # each key is asked once, at its query position, for its value
        assert sorted(x[asked].tolist()) == sorted(pairs)
        for t in asked.tolist():
            assert y[t].item() == pairs[x[t].item()]
    again = mqar.mqar_batch(B, L, P, V, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], inputs)


def test_mqar_tiny_run(run_analysis_tool):
    out = run_analysis_tool('mqar.py', '--settings', '32:4', '--steps', '2',
                            '--batch-size', '4', '--eval-sequences', '8',
                            '--models', 'attention', 'linear', 'mc-ssc',
                            'mc-deep-grm', '--segment-size', '8')
    assert '| model | L=32, 4 pairs | train time (s) |' in out
    for name in ('attention', 'linear', 'mc-ssc', 'mc-deep-grm'):
        assert f'| {name} | ' in out


def test_benchmark_mc_tiny(run_analysis_tool):
    out = run_analysis_tool('benchmark_mc.py', '--lengths', '64',
                            '--loop-lengths', '64', '--segment-size', '16',
                            '--scaling-length', '64', '--fixed-segments', '2',
                            '--iters', '1', '--warmup', '0', '--dim', '16',
                            '--heads', '2', '--threads', '1')
    row = [line for line in out.splitlines() if line.startswith('| 64 | 4 |')]
    assert row and row[-1].split('|')[-2].strip() != '-'  # loop ratio
    assert 'Scaling at L = 64' in out and 'Scaling at N = 2' in out
