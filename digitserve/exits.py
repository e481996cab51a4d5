"""The exit codes of the digitserve commands, one table so scripts can tell failures apart.

The README's "Exit codes" section shows the same table.
"""

OK = 0
FAILED = 1  # partly done or failed: inputs unreadable (the rest predicted), models that did not load, training failed
USAGE = 2  # the command line is wrong
REFUSED = 3  # the server answered and refused (a token, an unknown model)
UNREACHABLE = 4  # the server could not be reached, or did not answer within --timeout
LOCAL_FILE = 5  # a file the command needs could not be read or written (labels, certificates, output, disk full)
INTERRUPTED = 130  # stopped by Ctrl-C (SIGINT), as shells report it
