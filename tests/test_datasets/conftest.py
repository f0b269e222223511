"""The generated COCO-format sets (shapes, digits canvases): small copies
made once a session."""
import pytest

from mmcached.datasets import make_digits_canvas, make_shapes
from mmcached.datasets.digits_canvas import CLASSES as CANVAS_CLASSES
from mmcached.datasets.shapes import CLASSES as SHAPES_CLASSES

# name -> its generator, its classes, the images (train, val) of its small
# copy; tools/misc/make_<name>.py writes it
SETS = {
    'shapes': (make_shapes, SHAPES_CLASSES, (12, 6)),
    'digits_canvas': (make_digits_canvas, CANVAS_CLASSES, (12, 8)),
}


def _set(name):
    make, classes, (num_train, num_val) = SETS[name]
    return dict(
        make=make,
        classes=classes,
        small=dict(num_train=num_train, num_val=num_val),
        script=f'tools/misc/make_{name}.py')


def _small_copy(tmp_path_factory, name):
    cfg = _set(name)
    return cfg['make'](str(tmp_path_factory.mktemp('d') / name),
                       **cfg['small'])


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory):
    return _small_copy(tmp_path_factory, 'shapes')


@pytest.fixture(scope='session')
def canvas_root(tmp_path_factory):
    return _small_copy(tmp_path_factory, 'digits_canvas')


@pytest.fixture(params=sorted(SETS))
def coco_set(request):
    """Each set in turn: its generator (``make``), ``classes``, the sizes of
    its small copy (``small``), its command (``script``) and the copy's
    ``root``."""
    fixture = dict(shapes='shapes_root', digits_canvas='canvas_root')
    root = request.getfixturevalue(fixture[request.param])
    return dict(_set(request.param), root=root)
