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
