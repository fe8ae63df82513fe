"""python3 -m ckz merge DIR -o OUT.pt.ckz [--step N]: one file from a sharded checkpoint."""
import argparse
import sys

from . import CkzError


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m ckz", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("merge", help="merge the shards of a ckz.distributed checkpoint")
    m.add_argument("directory")
    m.add_argument("-o", "--output", required=True)
    m.add_argument("--step", type=int, help="default: the latest complete checkpoint")
    m.add_argument("-f", "--force", action="store_true", help="overwrite OUTPUT")
    args = p.parse_args(argv)
    from . import distributed  # imports torch.distributed: only when asked for
    try:
        info = distributed.merge(args.directory, args.output, args.step, overwrite=args.force)
    except CkzError as e:
        print("ckz: %s" % e, file=sys.stderr)
        return 2
    print("%s => %s: step %s, %d bytes" % (args.directory, args.output, info["step"],
                                           info["file_bytes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
