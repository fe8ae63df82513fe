#!/usr/bin/env python3
"""CKZ conformance runner: checks any CKZ decoder against the vectors in this folder.

    run.py --decoder "CMD {in} {outdir}" [--profile core|full] [--cases GLOB]
           [--check-error-names] [-v]

The decoder command is a template. {in} becomes the path of the case's input.ckz (inside the
case folder, so that the parent files of a chain lie beside it); {outdir} becomes an empty
temporary folder, into which the decoder must write the checkpoint's source files, each at its
recorded path (spec/ckz.md, section 8). The template is split like a POSIX shell command line
(shlex) and run without a shell; use --shell to run it through /bin/sh instead.

A valid case passes when the decoder exits with status 0 and the output folder holds exactly the
expected files (same paths, sizes and SHA-256); a valid case whose "expected_output" is
"reader-defined" (a checkpoint without source files, spec section 8) passes on the exit status
alone. An invalid case passes when the decoder exits with
a non-zero status (not killed by a signal, not timed out) and leaves no file in the output folder;
with --check-error-names the expected error name (spec section 11, e.g. "ChunkChecksum") must
also appear as a word in its stdout or stderr.

Exit status: 0 if every selected case passed, 1 if any failed, 2 on a usage or suite error.
Python 3.5+ standard library only.
"""

import argparse
import concurrent.futures
import fnmatch
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROFILES = {"core": ("core",), "full": ("core", "full")}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def list_outputs(root):
    """Every non-directory entry under root: {relative '/'-path: absolute path}."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = os.path.join(dirpath, name)
            found[os.path.relpath(full, root).replace(os.sep, "/")] = full
    return found


def build_command(template, case_input, outdir, use_shell):
    if use_shell:
        return (template.replace("{in}", shlex.quote(case_input))
                .replace("{outdir}", shlex.quote(outdir)))
    try:
        tokens = shlex.split(template)
    except ValueError as e:
        raise SystemExit("run.py: cannot split --decoder: %s" % e)
    return [t.replace("{in}", case_input).replace("{outdir}", outdir) for t in tokens]


def check_inputs(case, case_dir):
    """The case's own files must be intact before a decoder is blamed for anything."""
    for f in case["files"]:
        path = os.path.join(case_dir, f["path"])
        if not os.path.isfile(path):
            return "vector file %s is missing" % f["path"]
        if os.path.getsize(path) != f["size"] or sha256_file(path) != f["sha256"]:
            return "vector file %s is damaged (size or sha256 differs from the manifest)" % f["path"]
    return None


def run_case(case, args):
    """Returns (passed, reason, details)."""
    case_dir = os.path.join(args.vectors, "cases", case["name"])
    problem = check_inputs(case, case_dir)
    if problem:
        return False, problem, ""
    work = tempfile.mkdtemp(prefix="ckz-conf-")
    try:
        outdir = os.path.join(work, "out")
        os.mkdir(outdir)
        case_input = os.path.join(case_dir, case["input"])
        cmd = build_command(args.decoder, case_input, outdir, args.shell)
        try:
            proc = subprocess.run(cmd, shell=args.shell, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  timeout=args.timeout, cwd=work)
        except subprocess.TimeoutExpired:
            return False, "timed out after %g s" % args.timeout, ""
        except OSError as e:
            return False, "cannot run the decoder: %s" % e, ""
        out = proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
        details = "command: %s\nexit status: %d\noutput:\n%s" % (
            cmd if args.shell else " ".join(shlex.quote(c) for c in cmd), proc.returncode,
            out.rstrip() or "(none)")
        produced = list_outputs(outdir)

        if proc.returncode < 0:
            return False, "decoder killed by signal %d" % -proc.returncode, details
        if case["kind"] == "invalid":
            want = case["expected_error"]
            if proc.returncode == 0:
                return False, "accepted an invalid file (expected %s)" % want, details
            if produced:
                return False, "rejected it, but left output behind: %s" % ", ".join(sorted(produced)), details
            if args.check_error_names and not re.search(r"\b%s\b" % re.escape(want), out):
                return False, "rejected it, but the output does not name %s" % want, details
            return True, "rejected (%s)" % want, details

        if proc.returncode != 0:
            return False, "rejected a valid file (exit status %d): %s" % (
                proc.returncode, (out.strip().splitlines() or ["no message"])[-1]), details
        if case.get("expected_output") == "reader-defined":
            return True, "decoded (%d file(s); the output is the decoder's choice)" % len(produced), details
        expected = {e["path"]: e for e in case["expected"]}
        missing = sorted(set(expected) - set(produced))
        extra = sorted(set(produced) - set(expected))
        if missing:
            return False, "missing output file(s): %s" % ", ".join(missing), details
        if extra:
            return False, "unexpected output file(s): %s" % ", ".join(extra), details
        for path in sorted(expected):
            e, full = expected[path], produced[path]
            if os.path.islink(full) or not os.path.isfile(full):
                return False, "%s is not a regular file" % path, details
            size = os.path.getsize(full)
            if size != e["size"]:
                return False, "%s has %d bytes, expected %d" % (path, size, e["size"]), details
            if sha256_file(full) != e["sha256"]:
                return False, "%s differs from the expected bytes (sha256 mismatch)" % path, details
        return True, "%d file(s) match" % len(expected), details
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(
        description="Run CKZ conformance vectors against a decoder.",
        epilog="Example: run.py --decoder 'build/tools/ckz decompress -q -f {in} --output-dir {outdir}'")
    p.add_argument("--decoder", required=True,
                   help="command template with {in} (the .ckz file) and {outdir} (an empty folder)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="full",
                   help="core: keyframes only; full (default): everything, core included")
    p.add_argument("--cases", action="append", metavar="GLOB",
                   help="only cases whose name matches GLOB (repeatable)")
    p.add_argument("--check-error-names", action="store_true",
                   help="invalid cases must also name the expected error in stdout/stderr")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print the command and the decoder's output of failed cases")
    p.add_argument("-j", "--jobs", type=int, default=1, help="cases run in parallel (default 1)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per case (default 60)")
    p.add_argument("--shell", action="store_true", help="run the command through /bin/sh")
    p.add_argument("--vectors", default=HERE, help="folder holding manifest.json and cases/")
    args = p.parse_args()

    if "{in}" not in args.decoder or "{outdir}" not in args.decoder:
        p.error("--decoder must contain both {in} and {outdir}")
    args.vectors = os.path.abspath(args.vectors)
    if not args.shell:
        # Cases run in a temporary working folder: a relative program path is resolved here.
        tokens = build_command(args.decoder, "{in}", "{outdir}", False)
        program = tokens[0]
        if os.sep in program or (os.altsep and os.altsep in program):
            if not os.access(program, os.X_OK):
                p.error("decoder program %s is not an executable file" % program)
            args.decoder = " ".join(shlex.quote(t) for t in [os.path.abspath(program)] + tokens[1:])
        elif shutil.which(program) is None:
            p.error("decoder program %s is not on PATH" % program)
    try:
        with open(os.path.join(args.vectors, "manifest.json"), "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as e:
        print("run.py: cannot read the manifest: %s" % e, file=sys.stderr)
        return 2
    cases = [c for c in manifest["cases"] if c["profile"] in PROFILES[args.profile]]
    if args.cases:
        cases = [c for c in cases if any(fnmatch.fnmatchcase(c["name"], g) for g in args.cases)]
    if not cases:
        print("run.py: no case matches", file=sys.stderr)
        return 2

    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = list(pool.map(lambda c: run_case(c, args), cases))
    passed = failed = 0
    for case, (ok, reason, details) in zip(cases, results):
        if ok:
            passed += 1
            print("PASS %s: %s" % (case["name"], reason))
        else:
            failed += 1
            print("FAIL %s: %s" % (case["name"], reason))
            if args.verbose:
                print("  description: %s" % case["description"])
                for line in details.splitlines():
                    print("  | " + line)
    print("conformance: %d passed, %d failed (profile %s)" % (passed, failed, args.profile))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
