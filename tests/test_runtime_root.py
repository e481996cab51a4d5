"""deploy/runtime_root.py on this machine's own Python, whatever its layout: the folder it makes
runs Python on its own (in a chroot, as the images' FROM scratch stage does) and holds none of
what it leaves out. The container tests check the same on the images' base.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

CHROOT = shutil.which("chroot")
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or CHROOT is None,
                                reason="running the gathered root needs chroot, as root")

# Modules whose C parts need shared libraries beyond libc: the ones ldd must have found.
PROBE = ("import bz2, ctypes, decimal, hashlib, json, lzma, sqlite3, ssl, zlib, importlib.util; "
         "ctypes.CDLL(None); print(ssl.OPENSSL_VERSION, importlib.util.find_spec('pip') is None)")


def test_the_gathered_root_runs_python_alone_and_leaves_out_tests_tk_and_pip(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    scratch = tmp_path / "scratch"  # a folder carried over as it is, like the images' /tmp
    scratch.mkdir()
    scratch.chmod(0o1777)
    root = tmp_path / "root"
    subprocess.run([str(python), "-I", str(ROOT / "deploy/runtime_root.py"), str(root), str(scratch)],
                   check=True, timeout=300)

    done = subprocess.run([CHROOT, str(root), str(python), "-I", "-c", PROBE], capture_output=True, text=True,
                          env={"PATH": "/usr/bin", "LANG": "C.UTF-8"}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OpenSSL") and done.stdout.split()[-1] == "True", done.stdout

    names = {path.name for path in root.rglob("*")}
    assert not names & {"idlelib", "tkinter", "ensurepip", "pip", "sh", "bash", "apt-get"}
    assert not any(name.startswith("_tkinter") for name in names)  # nor Tk's C module
    assert os.stat(root / scratch.relative_to("/")).st_mode & 0o7777 == 0o1777
