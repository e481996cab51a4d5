#!/bin/sh
# The two steps of every build stage of the Dockerfile, run with the base image's Python:
#
#   deploy/build-stage.sh dependencies EXTRA
#       installs the base dependencies and those of the extra EXTRA (server, trainer or clients),
#       exactly what ".[EXTRA]" needs, read from pyproject.toml alone: the layer survives code changes.
#   deploy/build-stage.sh code "MODULE, ..." PATH...
#       installs the copied code, checks the install (pip check, an import of the modules that
#       the image's command starts) and gathers in /runtime what running it needs, with the
#       user's home and the PATHs (mount points, /tmp) carried over as they are.
#   deploy/build-stage.sh requirements EXTRA
#       only prints what `dependencies` installs.
#
# pip's downloads stay in the Dockerfile's build cache mount, never in an image; so do the
# libraries' own test suites (tens of MB that nothing here runs), which are deleted.
# Bytecode is written only for the modules the import check loads (python -I ignores
# PYTHONDONTWRITEBYTECODE and the working folder): compiling every module, as pip does by
# default, would add some 60 MB that a start never reads.
set -eu

usage() { echo "usage: $0 dependencies EXTRA | code 'MODULE, ...' PATH... | requirements EXTRA" >&2; exit 2; }
[ $# -ge 2 ] || usage
step=$1
shift
case "$step" in
    requirements)
        python -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print(*p['dependencies'], *p['optional-dependencies'][sys.argv[1]], sep='\n')" "$1"
        ;;
    dependencies)
        "$0" requirements "$1" > requirements.txt
        pip install --no-compile --requirement requirements.txt
        find "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" -depth -type d -name tests -exec rm -rf {} +
        ;;
    code)
        modules=$1
        shift
        pip install --no-deps .
        pip check
        python -I -c "import $modules"
        python -I deploy/runtime_root.py /runtime /home/digits "$@"
        ;;
    *)
        usage
        ;;
esac
