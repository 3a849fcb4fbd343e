"""The errors a reference raises on purpose. The CLI prints any of them as one line
(``error: ...``) and exits 2; anything else is a crash (exit 1, with its traceback)."""


# The name shadows Python's builtin ReferenceError (weak references) inside modules that import
# it; the agent imports it by this name, so it stays. Import it qualified where that matters.
class ReferenceError(Exception):  # noqa: A001
    """Base of every user-facing reference error (bad config, bad dataset, unknown name)."""


class ConfigError(ReferenceError):
    """An unknown mode or config key, or a value of the wrong type or out of range."""


class DatasetError(ReferenceError):
    """A dataset that is missing or malformed; the message names the file (and line)."""


class UnknownBenchmark(ReferenceError):
    """A benchmark name that is not registered; the message lists the known names."""


def one_line_from_workers(loader):
    """The loader's batches. A DatasetError raised in a DataLoader worker process comes back
    wrapped in the worker's traceback text: re-raise it as the one-line error it was."""
    try:
        yield from loader
    except DatasetError as exc:
        last = str(exc).strip().splitlines()[-1]
        raise DatasetError(last.split("DatasetError: ", 1)[-1]) from None
