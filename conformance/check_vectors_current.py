#!/usr/bin/env python3
"""Fails unless the committed conformance vectors are what the generator makes today.

    check_vectors_current.py --generator BUILD/conformance/make_vectors --vectors SRC/conformance
                             [--build-dir BUILD]

Runs the generator into a temporary folder and compares its cases/ tree and manifest.json with
the committed ones, byte for byte. A difference means the format, the writer or a case changed
without the vectors being regenerated (or libzstd / FlatBuffers now write other bytes for the
same input): the message says which files differ and how to regenerate.
Python 3.5+ standard library only.
"""

import argparse
import filecmp
import os
import shlex
import shutil
import subprocess
import sys
import tempfile


def tree(root):
    files = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            full = os.path.join(dirpath, name)
            files[os.path.relpath(full, root).replace(os.sep, "/")] = full
    return files


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generator", required=True, help="the make_vectors executable")
    p.add_argument("--vectors", required=True, help="the committed conformance folder")
    p.add_argument("--build-dir", default="<build>", help="for the regeneration hint")
    args = p.parse_args()

    work = tempfile.mkdtemp(prefix="ckz-vectors-")
    try:
        proc = subprocess.run([args.generator, work], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            sys.stdout.write(proc.stdout.decode("utf-8", "replace"))
            print("check_vectors_current: the generator failed (exit status %d)" % proc.returncode)
            return 1
        fresh = tree(os.path.join(work, "cases"))
        fresh["manifest.json"] = os.path.join(work, "manifest.json")
        committed = tree(os.path.join(args.vectors, "cases"))
        manifest = os.path.join(args.vectors, "manifest.json")
        if os.path.exists(manifest):
            committed["manifest.json"] = manifest
        fresh = {(k if k == "manifest.json" else "cases/" + k): v for k, v in fresh.items()}
        committed = {(k if k == "manifest.json" else "cases/" + k): v for k, v in committed.items()}

        added = sorted(set(fresh) - set(committed))
        removed = sorted(set(committed) - set(fresh))
        changed = sorted(k for k in set(fresh) & set(committed)
                         if not filecmp.cmp(fresh[k], committed[k], shallow=False))
        if not (added or removed or changed):
            print("check_vectors_current: %d files identical to the generator's output" % len(fresh))
            return 0
        for title, names in (("changed", changed), ("missing (the generator makes them)", added),
                             ("stale (the generator no longer makes them)", removed)):
            if names:
                print("%s: %d file(s)" % (title, len(names)))
                for n in names[:40]:
                    print("  " + n)
                if len(names) > 40:
                    print("  ... and %d more" % (len(names) - 40))
        print()
        print("The committed conformance vectors are not what conformance/make_vectors.cc makes.")
        print("If the format or a case changed on purpose, regenerate them and commit the result:")
        print("  ninja -C %s make_vectors && %s %s" % (
            shlex.quote(args.build_dir), shlex.quote(args.generator),
            shlex.quote(os.path.abspath(args.vectors))))
        print("(if nothing changed on purpose, a change in libzstd or FlatBuffers output may be the")
        print("cause: the vectors would then still decode, but their stored bytes differ)")
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
