# The plain linear-attention twin of mc-vit-mini-p8_1xb64-40e_digits.py: the
# same Memory Caching layer with one segment, so nothing is cached and each
# token reads only its online linear memory (the mean of a forward and a
# reversed scan, as in the MC config). It isolates what caching the segment
# states adds to the recurrent memory, the comparison the Memory Caching
# paper makes; vit-mini-p8_1xb64-40e_digits.py is the softmax-attention twin.
_base_ = './mc-vit-mini-p8_1xb64-40e_digits.py'

model = dict(backbone=dict(cache_cfg=dict(num_segments=1)))
