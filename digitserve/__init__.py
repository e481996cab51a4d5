"""digitserve: what the trainer, the server and the clients share."""


def version() -> str:
    """The installed package's version, for every command's ``--version``."""
    from importlib.metadata import PackageNotFoundError, version as installed

    try:
        return installed("digitserve")
    except PackageNotFoundError:
        return "unknown (not installed)"
