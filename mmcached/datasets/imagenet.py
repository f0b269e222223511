"""ImageNet with a clear error when the data is not where the config says."""
from typing import List

from mmpretrain.datasets import ImageNet

from mmcached.registry import DATASETS
from .coco import check_data_files

IMAGENET_LAYOUT = """\
  {root}
  ├── meta/            (optional: train.txt, val.txt as 'path label' lines)
  ├── train/
  │   ├── n01440764/   (one folder of images per class)
  │   └── ...
  └── val/             (class folders, or flat images with meta/val.txt)"""


@DATASETS.register_module()
class CheckedImageNet(ImageNet):
    """mmpretrain's ``ImageNet``; a missing image folder or annotation file
    raises an error that names the path and the expected layout."""

    def load_data_list(self) -> List[dict]:
        check_data_files(
            type(self).__name__, self.data_root, self.ann_file,
            self.img_prefix, IMAGENET_LAYOUT,
            'ImageNet-1k is at https://image-net.org/download.php.')
        return super().load_data_list()
