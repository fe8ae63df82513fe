"""pytest setup for the ckz Python package: the package from the build tree (unless PYTHONPATH
already provides one), the ckz CLI from CKZ_TOOLS_DIR (ctest sets both)."""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # helpers, dist_workers
if not any(pathlib.Path(p, "ckz", "__init__.py").exists() for p in sys.path if p):
    sys.path.insert(0, str(ROOT / "build" / "python"))
TOOLS = pathlib.Path(os.environ.get("CKZ_TOOLS_DIR", ROOT / "build" / "tools"))


@pytest.fixture
def ckz_cli():
    """Runs the ckz command-line tool; returns its CompletedProcess (check=True)."""
    def run(*args, check=True):
        return subprocess.run([str(TOOLS / "ckz"), *map(str, args)], check=check,
                              capture_output=True, text=True)
    return run


@pytest.fixture
def ckzinfo_json():
    import json

    def run(path):
        out = subprocess.run([str(TOOLS / "ckzinfo"), "--json", "--chunks", str(path)],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)
    return run


def pytest_configure(config):
    # torch 1.13's SequentialLR calls step(0) internally and warns about it.
    config.addinivalue_line("filterwarnings", "ignore:The epoch parameter:UserWarning")
