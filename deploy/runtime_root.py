"""Copy into a folder the smallest root filesystem that still runs this Python and what it has installed.

    python -I deploy/runtime_root.py /runtime /home/digits /models /tmp

The Dockerfile's images start FROM scratch and copy that folder in, so an image holds
the interpreter, its standard library, the installed packages and the shared libraries they
load, and none of the base image's shell, package manager, documentation, pip or headers. The
paths given after the folder (a home, a volume's mount point, /tmp) are carried over as they
are, owner and mode included.

Run as the build stage's last step (deploy/build-stage.sh code), after `pip check` and an
import check, with the Python that the image runs: the official image's /usr/local (as on the
stand-in base image that deploy/setup-host.sh lays out the same way), or a virtual environment
over a system Python (its fallback stand-in; tests/test_runtime_root.py). Shared libraries are found with
`ldd`, so a library that cannot be found stops the build here, naming the file that needs it,
rather than at the container's first start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import ssl
import subprocess
import sys
import sysconfig
from pathlib import Path

# Parts of the standard library that nothing here imports: its tests, the IDE, Tk, turtle
# graphics, 2to3, the bundled pip, and the C headers and build files.
UNUSED_STDLIB = ("test", "idlelib", "tkinter", "turtledemo", "turtle.py", "ensurepip", "lib2to3",
                 "pydoc_data")
# Installers: the image's packages are installed and checked by then, so they are dead weight.
INSTALLERS = ("pip", "setuptools", "wheel", "pkg_resources", "_distutils_hack", "distutils-precedence.pth")
UNUSED_IN_PREFIX = ("include", "share", "man", "games", "src", "etc", "sbin")
UNUSED_COMMANDS = ("pip", "activate", "Activate.ps1", "idle", "pydoc", "2to3", "python-config", "python3-config",
                   "python3.11-config")
# glibc loads this one itself (thread cancellation, unwinding), so no ldd output names it.
LOADED_BY_GLIBC = ("libgcc_s.so.1",)


def unused(path: Path, stdlib: Path, packages: Path, prefix: Path) -> bool:
    """Whether a path inside one of the copied trees is left out of the image."""
    if path.parent == stdlib:
        # the base Python's own site-packages, when this Python is a virtual environment over it
        foreign = path.name == "site-packages" and path != packages
        return foreign or path.name in UNUSED_STDLIB or path.name.startswith("config-")
    if path.parent == packages:
        return path.name in INSTALLERS or path.name.split("-")[0] in INSTALLERS and path.suffix == ".dist-info"
    if path.parent.name == "lib-dynload":
        # Tk's C module: the official image keeps it but not Tk's libraries, so ldd would find them missing
        return path.name.startswith("_tkinter")
    if path.parent == prefix:
        return path.name in UNUSED_IN_PREFIX
    if path.parent == prefix / "bin":
        return path.name.startswith(UNUSED_COMMANDS)
    if path.parent == prefix / "lib":
        return path.name == "pkgconfig"
    return False


class Root:
    """A root filesystem being filled: each path keeps its place, owner and mode, and symlinks stay symlinks."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _mirror(self, source: Path) -> None:
        """Make the folder or file `source` names at its place in the root (without its contents)."""
        target = self.folder / source.relative_to("/")
        if target.exists() or target.is_symlink():
            return
        if source.is_dir():
            target.mkdir()
        else:
            shutil.copyfile(source, target)
        shutil.copystat(source, target)
        status = source.lstat()
        os.chown(target, status.st_uid, status.st_gid)

    def place(self, path: str | Path) -> None:
        """Copy one file, folder or symlink, with the folders above it; a symlink's target comes too."""
        parts = Path(os.path.normpath(path)).parts
        current = Path("/")
        for index, part in enumerate(parts[1:], start=1):
            current = current / part
            if current.is_symlink():
                target = self.folder / current.relative_to("/")
                if not target.is_symlink():
                    os.symlink(os.readlink(current), target)
                self.place(os.path.join(current.parent, os.readlink(current), *parts[index + 1:]))
                return
            if not current.exists():
                raise SystemExit(f"runtime_root: {path} does not exist ({current} is missing)")
            self._mirror(current)

    def tree(self, top: Path, leave_out) -> None:
        """Copy a folder and everything in it, except what `leave_out(path)` says."""
        self.place(top)
        for folder, subfolders, files in os.walk(top):
            for name in [*subfolders, *files]:
                path = Path(folder, name)
                if leave_out(path):
                    if name in subfolders:
                        subfolders.remove(name)
                    continue
                self.place(path)

    def elf_files(self):
        """The root's executables and libraries, except the ones wheels bundle in their `*.libs`
        folders: those are found through the rpath of the modules that load them, so ldd lists
        them (and what they need) for those modules, and on their own it would not find their
        neighbours."""
        for folder, _, files in os.walk(self.folder):
            if folder.endswith(".libs"):
                continue
            for name in files:
                path = Path(folder, name)
                if not path.is_symlink():
                    with open(path, "rb") as file:
                        if file.read(4) == b"\x7fELF":
                            yield Path("/", path.relative_to(self.folder))


def shared_libraries(elf: Path) -> list[str]:
    """The libraries that `elf` loads, as ldd resolves them; one that is not found stops the build."""
    done = subprocess.run(["ldd", str(elf)], capture_output=True, text=True)
    if done.returncode != 0:  # a static executable or a file ldd cannot read: it needs nothing
        return []
    found = []
    for line in done.stdout.splitlines():
        name, _, rest = line.strip().partition(" => ")
        if rest.startswith("not found"):
            raise SystemExit(f"runtime_root: {elf} needs {name}, which is not installed")
        path = (rest or name).split(" (")[0]
        if path.startswith("/"):
            found.append(path)
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where the root filesystem goes (must not exist)")
    parser.add_argument("keep", nargs="*", type=Path, help="more paths to carry over as they are")
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True)
    root = Root(args.folder)

    prefix = Path(sys.prefix)
    base = {"base": sys.base_prefix, "platbase": sys.base_prefix}
    stdlib = Path(sysconfig.get_paths(vars=base)["stdlib"])
    packages = Path(sysconfig.get_paths()["purelib"])

    def leave_out(path: Path) -> bool:
        return unused(path, stdlib, packages, prefix)

    root.tree(prefix, leave_out)
    for tree in {stdlib, Path(sysconfig.get_paths(vars=base)["platstdlib"]), packages,
                 Path(sysconfig.get_paths()["platlib"])}:
        root.tree(tree, leave_out)
    root.place(sys.executable)
    for path in args.keep:
        root.tree(path, lambda _: False)

    needed = {library for elf in root.elf_files() for library in shared_libraries(elf)}
    libc = next((library for library in needed if Path(library).name == "libc.so.6"), None)
    if libc:
        needed.update(str(Path(libc).parent / name) for name in LOADED_BY_GLIBC
                      if (Path(libc).parent / name).exists())
    for library in sorted(needed):
        root.place(library)

    # Who is who (the image's user); the loader's cache, through which libraries outside its default
    # folders (/usr/local/lib) are found without an rpath (its entries for libraries left out are
    # skipped); the CA bundle for HTTPS (the trainer's MNIST download).
    for path in ("/etc/passwd", "/etc/group", "/etc/ld.so.cache", ssl.get_default_verify_paths().openssl_cafile):
        if os.path.exists(path):
            root.place(path)


if __name__ == "__main__":
    main()
