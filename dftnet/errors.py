"""Errors meant for people: each carries one line naming the file, row or key at fault."""


class BenchError(Exception):
    """Base class; the CLI prints ``str(err)`` on one line and exits with status 2."""


class ConfigError(BenchError):
    """A params key is unknown, mistyped or out of range."""


class DataError(BenchError):
    """An input file (image, AU table, id list, checkpoint) is missing or malformed."""


class TrainingDiverged(BenchError):
    """A loss became NaN or inf; the message names the step and the term."""


def first_line(err: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (library messages can run over several lines)."""
    return (str(err).strip().splitlines() or [""])[0][:limit]
