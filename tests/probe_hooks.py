"""A hook that records what a training run did, for the launch and resume
tests (imported by their subprocesses through ``custom_imports``).

Per rank, under the work dir: ``probe_rank{r}.jsonl``, one line per
iteration (the sample ids and a hash of the augmented images of its batch),
and ``final_rank{r}.pth`` at the end of training (model state, caches
included; optimizer and scheduler states; iteration and epoch). With
``PROBE_KILL_AT=N`` in the environment, the process kills itself with
SIGKILL at the end of iteration N, after that iteration's checkpoint (if
any) is saved; with ``PROBE_PAUSE_AT=N``, it writes ``paused_rank{r}`` there
and waits to be stopped (a Slurm job's first start only), e.g. preempted.
"""
import hashlib
import json
import os
import os.path as osp
import signal
import time

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _sample_ids(data_batch):
    ids = []
    for s in data_batch['data_samples']:
        meta = s.metainfo
        ids.append(meta.get('sample_idx', meta.get('img_id')))
    return ids


@HOOKS.register_module()
class ProbeHook(Hook):

    priority = 'LOWEST'  # after the checkpoint of the iteration is saved

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        images = hashlib.sha1()
        for image in data_batch['inputs']:
            images.update(image.numpy().tobytes())
        record = dict(
            iter=runner.iter + 1,
            batch_idx=batch_idx,
            ids=_sample_ids(data_batch),
            images=images.hexdigest())
        path = osp.join(runner.work_dir, f'probe_rank{get_rank()}.jsonl')
        with open(path, 'a') as f:
            f.write(json.dumps(record) + '\n')
        if os.environ.get('PROBE_KILL_AT') == str(runner.iter + 1):
            os.kill(os.getpid(), signal.SIGKILL)
        if os.environ.get('PROBE_PAUSE_AT') == str(runner.iter + 1) and \
                os.environ.get('SLURM_RESTART_COUNT', '0') == '0':
            open(osp.join(runner.work_dir, f'paused_rank{get_rank()}'),
                 'w').close()
            time.sleep(3600)

    def after_train(self, runner):
        model = runner.model.module if hasattr(runner.model,
                                               'module') else runner.model
        torch.save(
            dict(
                model=model.state_dict(),
                optimizer=runner.optim_wrapper.state_dict(),
                schedulers=[s.state_dict() for s in runner.param_schedulers],
                iter=runner.iter,
                epoch=runner.epoch),
            osp.join(runner.work_dir, f'final_rank{get_rank()}.pth'))
