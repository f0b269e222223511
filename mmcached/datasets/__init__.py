"""Datasets: the embedded digits, digits canvas and shapes sets, and COCO
and ImageNet with path checks."""
from .coco import CheckedCocoDataset, check_data_files
from .digits import DigitsDataset, digits_split_indices
from .digits_canvas import (DEFAULT_DIGITS_CANVAS_CFG, DigitsCanvasDataset,
                            make_digits_canvas)
from .imagenet import CheckedImageNet
from .shapes import DEFAULT_SHAPES_CFG, ShapesDataset, make_shapes

__all__ = [
    'CheckedCocoDataset', 'CheckedImageNet', 'check_data_files',
    'DigitsDataset', 'digits_split_indices', 'ShapesDataset', 'make_shapes',
    'DEFAULT_SHAPES_CFG', 'DigitsCanvasDataset', 'make_digits_canvas',
    'DEFAULT_DIGITS_CANVAS_CFG'
]
