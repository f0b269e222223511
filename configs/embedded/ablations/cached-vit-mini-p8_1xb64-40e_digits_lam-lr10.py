# Ablation of the digits GRC config: 10x the learning rate and no weight
# decay for lam and the cache's gates (mmengine's paramwise_cfg.custom_keys;
# the keys are substrings of the parameter names), so the mix is free to
# move within the schedule.
_base_ = '../cached-vit-mini-p8_1xb64-40e_digits.py'

optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            '.grc.lam': dict(lr_mult=10., decay_mult=0.),
            '.grc.cache.gates': dict(lr_mult=10.)
        }))
