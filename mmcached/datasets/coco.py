"""COCO with a clear error when the data is not where the config says."""
import os.path as osp
from typing import List

from mmdet.datasets import CocoDataset

from mmcached.registry import DATASETS

COCO_LAYOUT = """\
  {root}
  ├── annotations
  │   ├── instances_train2017.json
  │   └── instances_val2017.json
  ├── train2017/   (images)
  └── val2017/     (images)"""


def _is_local(path: str) -> bool:
    return '://' not in str(path)


def check_data_files(dataset_name: str,
                     data_root,
                     ann_file: str,
                     img_dir: str,
                     layout: str,
                     hint: str = '') -> None:
    """Raise ``FileNotFoundError`` naming what is missing and the layout
    expected, instead of the bare error of the annotation loader."""
    missing = []
    if ann_file and _is_local(ann_file) and not osp.isfile(ann_file):
        missing.append(f'annotation file {ann_file!r}')
    if img_dir and _is_local(img_dir) and not osp.isdir(img_dir):
        missing.append(f'image folder {img_dir!r}')
    if not missing:
        return
    root = data_root if data_root else '<data_root>'
    msg = (f'{dataset_name}: {" and ".join(missing)} not found '
           f'(data_root={data_root!r}). Expected layout:\n'
           f'{layout.format(root=root)}\n'
           'Put the data there (a symlink is fine) or point the config at '
           'it: --cfg-options data_root=/path/to/data with tools/train.py '
           'or tools/test.py, or MMCACHED_DATA_ROOT=/path/to/data in the '
           "environment with any tool (mmcached's dataset configs read "
           "both), or set data_root in your own config.")
    if hint:
        msg += '\n' + hint
    raise FileNotFoundError(msg)


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """mmdet's ``CocoDataset``; a missing annotation file or image folder
    raises an error that names the path and the expected COCO layout."""

    LAYOUT = COCO_LAYOUT
    HINT = 'COCO 2017 is at https://cocodataset.org/#download.'

    def load_data_list(self) -> List[dict]:
        check_data_files(
            type(self).__name__, self.data_root, self.ann_file,
            self.data_prefix.get('img', ''), self.LAYOUT, self.HINT)
        return super().load_data_list()
