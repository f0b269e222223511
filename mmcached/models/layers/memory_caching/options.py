"""Memory Caching's options: one typed, validated, frozen object shared by
the layer, the chunked engine, the reference loop and the tests.

The config keys are the layer's arguments of the same names
(``cache_cfg=dict(type='MemoryCachingAttention', segment_size=64, ...)``).
A misspelt choice gets the nearest allowed one suggested.
"""
import difflib
from dataclasses import dataclass, fields
from numbers import Real
from typing import List, Optional, Sequence

from .per_token import segment_lengths

MEMORIES = ('linear', 'deep')
SEGMENTATIONS = ('constant', 'logarithmic', 'uniform')
SEGMENT_STARTS = ('checkpoint', 'restart')
AGGREGATIONS = ('residual', 'grm', 'soup', 'ssc')
LINEAR_FORMS = ('auto', 'state', 'token')
KERNELS = ('auto', 'torch', 'fla')

#: ``segment_size`` of ``constant`` segmentation when none is given (the
#: paper's)
DEFAULT_SEGMENT_SIZE = 256


@dataclass(frozen=True)
class MCOptions:
    """How Memory Caching mixes tokens (see :mod:`.per_token` for the math).

    Args:
        memory (str): ``'linear'`` (default) or ``'deep'``.
        segmentation (str): ``'constant'`` (default), ``'logarithmic'`` or
            ``'uniform'`` (ours, for images: ``num_segments`` equal
            segments whatever the length).
        segment_size (int, optional): C of ``constant`` segmentation
            (default 256); not allowed for the other two.
        num_segments (int, optional): segments of ``uniform`` segmentation
            (required there, not allowed elsewhere).
        segment_start (str): ``'checkpoint'`` (default) or ``'restart'``.
        aggregation (str): ``'residual'``, ``'grm'`` (default), ``'soup'``
            or ``'ssc'``.
        top_k (int, optional): cached segments kept by ``ssc`` (required
            there, not allowed elsewhere).
        chunk_size (int): deep memory: tokens per chunk of the
            chunk-parallel update (1: exact per-token DLA). Default 16.
        inner_lr (float): deep memory: step of the inner update. Default
            0.03 (docs/mc.md: larger steps exploded at initialisation).
        deep_expansion (int): deep memory: hidden width F = this * d.
            Default 4.
        block_size (int): linear memory: tokens per block of the
            within-segment computation (exact for any value). Default 64.
        linear_form (str): linear memory: ``'auto'`` (default),
            ``'state'`` (O(L N d^2)) or ``'token'`` (O(L^2 d)).
        kernel (str): linear memory, state form: ``'auto'`` (default:
            flash-linear-attention's kernels on CUDA where ``fla-core`` is
            installed, else PyTorch), ``'fla'`` (the same, an error here if
            fla cannot be used) or ``'torch'``.
    """
    memory: str = 'linear'
    segmentation: str = 'constant'
    segment_size: Optional[int] = None
    num_segments: Optional[int] = None
    segment_start: str = 'checkpoint'
    aggregation: str = 'grm'
    top_k: Optional[int] = None
    chunk_size: int = 16
    inner_lr: float = 0.03
    deep_expansion: int = 4
    block_size: int = 64
    linear_form: str = 'auto'
    kernel: str = 'auto'

    def __post_init__(self):
        for name, allowed in (('memory', MEMORIES), ('segmentation',
                                                     SEGMENTATIONS),
                              ('segment_start',
                               SEGMENT_STARTS), ('aggregation', AGGREGATIONS),
                              ('linear_form', LINEAR_FORMS), ('kernel',
                                                              KERNELS)):
            _check_choice(name, getattr(self, name), allowed)
        self._check_segments()
        _check_conditional('top_k', self.top_k, 'aggregation',
                           self.aggregation, 'ssc',
                           'cached segments kept per token')
        for name in ('chunk_size', 'deep_expansion', 'block_size'):
            _check_int(name, getattr(self, name))
        if isinstance(self.inner_lr, bool) or not isinstance(
                self.inner_lr, Real) or not self.inner_lr > 0:
            raise ValueError(
                f'inner_lr must be a number > 0, got {self.inner_lr!r}')
        object.__setattr__(self, 'inner_lr', float(self.inner_lr))
        if self.kernel == 'fla':
            self._check_fla()

    def _check_segments(self):
        if self.segmentation == 'constant':
            if self.segment_size is None:
                object.__setattr__(self, 'segment_size', DEFAULT_SEGMENT_SIZE)
            _check_int('segment_size', self.segment_size)
        elif self.segment_size is not None:
            raise ValueError('segment_size applies only to '
                             "segmentation='constant'; logarithmic and "
                             'uniform segments follow the sequence length')
        _check_conditional('num_segments', self.num_segments, 'segmentation',
                           self.segmentation, 'uniform',
                           'segments per sequence')

    def _check_fla(self):
        from .fla import fla_available
        if self.memory != 'linear':
            raise ValueError("kernel='fla' serves memory='linear' only, "
                             f'got memory={self.memory!r}')
        if not fla_available():
            raise ValueError(
                "kernel='fla' needs CUDA and flash-linear-attention's "
                "kernels ('pip install fla-core'); use kernel='auto' to "
                'take them only where they can run')

    @property
    def streamable(self) -> bool:
        """Whether a sequence can be fed in pieces: only constant segments
        do not depend on the full length."""
        return self.segmentation == 'constant'

    def segment_lengths(self, length: int) -> List[int]:
        """Segment lengths of a sequence of ``length`` tokens."""
        return segment_lengths(length, self.segmentation, self.segment_size,
                               self.num_segments)

    @classmethod
    def pick(cls, args: dict) -> 'MCOptions':
        """Options from the entries of ``args`` named as the fields (e.g. a
        layer's ``locals()``, whose signature spells every option out)."""
        return cls(**{f.name: args[f.name] for f in fields(cls)})


def _check_choice(option: str, value, allowed: Sequence[str]) -> None:
    if value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f' (did you mean {close[0]!r}?)' if close else ''
        raise ValueError(f'{option} must be one of {tuple(allowed)}, '
                         f'got {value!r}{hint}')


def _check_conditional(option: str, value, key: str, setting: str,
                       needed_by: str, meaning: str) -> None:
    """``option`` (an int >= 1) is required where ``key`` is
    ``needed_by``, and not allowed for any other setting."""
    if setting == needed_by:
        if value is None:
            raise ValueError(f'{key}={needed_by!r} needs {option} (an int '
                             f'>= 1: {meaning})')
        _check_int(option, value)
    elif value is not None:
        raise ValueError(f'{option} applies only to {key}={needed_by!r}, '
                         f'got {key}={setting!r}')


def _check_int(option: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{option} must be an int >= 1, got {value!r}')
