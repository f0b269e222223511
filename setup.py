import os.path as osp
from setuptools import find_packages, setup


def readme():
    with open('README.md', encoding='utf-8') as f:
        return f.read()


def get_version():
    scope = {}
    with open(osp.join('mmcached', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(path):
    """Requirement lines of a file under requirements/, comments dropped."""
    reqs = []
    with open(osp.join('requirements', path), encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


if __name__ == '__main__':
    setup(
        name='mmcached',
        version=get_version(),
        description=('Cached Transformers (GRC attention) for MMDetection '
                     'and MMPretrain'),
        long_description=readme(),
        long_description_content_type='text/markdown',
        license='Apache License 2.0',
        packages=find_packages(exclude=('configs', 'tools', 'tests', 'demo')),
        # configs/ and tools/ travel inside the package as .mim/ (symlinks in
        # the repo, real copies in a wheel), where mmengine looks for
        # `_base_ = 'mmcached::...'`.
        package_data={
            'mmcached': [
                '.mim/model-index.yml', '.mim/configs/**/*.py',
                '.mim/configs/**/metafile.yml', '.mim/tools/*.py',
                '.mim/tools/**/*.py', '.mim/tools/*.sh'
            ]
        },
        include_package_data=True,
        python_requires='>=3.8',
        install_requires=[
            'torch>=2.0',
            'torchvision',
            'mmengine>=0.10.0,<0.11',
            'mmcv>=2.0.0,<2.2.0',
            'mmdet>=3.2.0,<3.4',
            'mmpretrain>=1.1.0,<1.3',
        ] + parse_requirements('runtime.txt'),
        extras_require={
            'tests': parse_requirements('tests.txt'),
            'optional': parse_requirements('optional.txt'),
            'fla': parse_requirements('fla.txt')
        },
        zip_safe=False)
