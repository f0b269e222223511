from .loops import (ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop,
                    seed_everything)

__all__ = [
    'ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop',
    'seed_everything'
]
