"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class VVCError(Exception):
    """An error caused by the user's input, shown without a traceback."""

    exit_code = 2


class ConfigError(VVCError):
    """A config file, key or value is wrong."""


class RegistryError(VVCError):
    """An unknown name was asked of a registry."""


class BitstreamError(VVCError):
    """A bitstream is damaged, foreign or incompatible."""


class FrameCountError(VVCError):
    """A clip has a frame count the backbone cannot take."""


class WeightsError(VVCError):
    """Weights are missing or do not fit the model."""


class CodecOptionError(VVCError):
    """A codec option holds a value it cannot take; `field` names it, `problem` says why.

    `mentions` names the other options the problem's text speaks of (the CLI words them as its flags).
    """

    def __init__(self, field: str, problem: str, mentions: tuple[str, ...] = ()) -> None:
        super().__init__(f"{field} {problem}")
        self.field, self.problem, self.mentions = field, problem, mentions


class ModelMismatchError(BitstreamError):
    """A bitstream was made with another model than the one loaded; `problem` says which."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem}; load the checkpoint it was made with")
        self.problem = problem


def first_line(exc: BaseException) -> str:
    """The first non-empty line of `exc`'s message, or its type's name when it has none (EOFError(''))."""
    return next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
