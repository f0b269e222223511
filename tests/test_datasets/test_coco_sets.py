"""What the generated COCO-format sets (shapes, digits canvases) share: a
deterministic layout, ground truth that scores a perfect COCO mAP, and the
command that writes them (tools/misc/make_*.py)."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _read(root, split):
    with open(osp.join(root, 'annotations', f'instances_{split}.json')) as f:
        return json.load(f)


def _files(root):
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = osp.join(d, f)
            with open(p, 'rb') as fh:
                out[osp.relpath(p, root)] = fh.read()
    return out


def test_layout_and_determinism(coco_set, tmp_path):
    make, small, root = coco_set['make'], coco_set['small'], coco_set['root']
    files = _files(root)
    assert 'annotations/instances_train.json' in files
    assert 'annotations/instances_val.json' in files
    assert sum(k.startswith('train/') for k in files) == small['num_train']
    assert sum(k.startswith('val/') for k in files) == small['num_val']
    # Same seed: byte-identical images and json.
    again = make(str(tmp_path / 'again'), **small)
    assert _files(again) == files
    # Another seed: other data.
    other = make(str(tmp_path / 'other'), seed=1, **small)
    assert _read(other, 'train') != _read(root, 'train')
    # train and val differ
    assert files['train/00000.png'] != files['val/00000.png']
    # no temporary folder left behind
    assert not [p for p in os.listdir(tmp_path) if p.startswith('.')]


def test_coco_metric_on_ground_truth_is_perfect(coco_set):
    from mmdet.evaluation import CocoMetric
    from pycocotools.coco import COCO
    ann_file = osp.join(coco_set['root'], 'annotations', 'instances_val.json')
    coco = COCO(ann_file)
    metric = CocoMetric(ann_file=ann_file, metric=['bbox', 'segm'])
    metric.dataset_meta = dict(classes=coco_set['classes'])
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        boxes = [[
            a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
            a['bbox'][1] + a['bbox'][3]
        ] for a in anns]
        masks = np.stack([coco.annToMask(a) for a in anns]).astype(bool)
        sample = dict(
            img_id=img_id,
            ori_shape=(info['height'], info['width']),
            pred_instances=dict(
                bboxes=torch.tensor(boxes, dtype=torch.float32),
                scores=torch.ones(len(anns)),
                labels=torch.tensor([a['category_id'] - 1 for a in anns]),
                masks=torch.from_numpy(masks)))
        metric.process({}, [sample])
    res = metric.evaluate(size=len(coco.getImgIds()))
    assert res['coco/bbox_mAP'] == pytest.approx(1.0)
    assert res['coco/segm_mAP'] == pytest.approx(1.0)


def test_make_cli(coco_set, tmp_path, monkeypatch, load_tool):
    # In-process (a subprocess spends ~10 s importing the toolboxes),
    # except the refusal, which runs the command as a user does.
    script = coco_set['script']
    cli = load_tool(script)
    out = str(tmp_path / 'cli')
    argv = [
        osp.basename(script), '--out', out, '--num-train', '2', '--num-val',
        '1'
    ]
    monkeypatch.setattr(sys, 'argv', argv)
    cli.main()
    assert osp.isfile(osp.join(out, 'annotations', 'instances_val.json'))
    # The same files as the library call.
    ref = coco_set['make'](str(tmp_path / 'ref'), num_train=2, num_val=1)
    assert _files(out) == _files(ref)
    # Refuses to overwrite without --force, replaces with it.
    r = subprocess.run([sys.executable, script, *argv[1:]],
                       cwd=REPO,
                       capture_output=True,
                       text=True)
    assert r.returncode != 0 and '--force' in r.stderr
    assert _files(out) == _files(ref)
    monkeypatch.setattr(sys, 'argv', argv + ['--force', '--seed', '1'])
    cli.main()
    assert _files(out) != _files(ref)
