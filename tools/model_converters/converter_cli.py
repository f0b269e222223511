"""The command line the checkpoint converters share: ``SRC DST`` and one
option, ``--no-head`` (classifier converters) or ``--prefix`` (backbone
converters), passed on to the conversion."""
import argparse

from mmcached.utils.checkpoint import load_state_dict_from, save_state_dict


def convert_main(convert, doc, src_help, prefix=False, argv=None):
    """Save ``convert(state_dict, option)`` of the checkpoint SRC at DST;
    ``option`` is ``--prefix`` (a string) where ``prefix``, else whether to
    keep the head (not ``--no-head``). ``doc``: the converter's docstring,
    whose first paragraph describes it."""
    description = ' '.join(doc.split('\n\n')[0].replace('``', '').split())
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', help=src_help)
    parser.add_argument('dst', help='where to save the converted one')
    if prefix:
        parser.add_argument(
            '--prefix',
            default='',
            help='prefix for every key, e.g. backbone.')
    else:
        parser.add_argument(
            '--no-head', action='store_true', help='drop the classifier head')
    args = parser.parse_args(argv)
    option = args.prefix if prefix else not args.no_head
    save_state_dict(convert(load_state_dict_from(args.src), option), args.dst)
