"""The project's exceptions, in one place.

The service turns these into HTTP errors at its routes and nowhere else; the CLI prints
their message. Every message names what is wrong and, where it helps, what to do.
"""

from __future__ import annotations


class RobustnessError(Exception):
    """Base class of every error this project raises on purpose."""


class SpecError(RobustnessError, ValueError):
    """A study spec is invalid. ``field`` names the offending field (dotted path)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message if field is None else f"{field}: {message}")
        self.field = field


class UnknownPresetError(SpecError):
    """No preset has this name."""


class UnknownNameError(SpecError, LookupError):
    """A spec names a workload, model or optimizer this deployment does not have; ``choices``
    are the installed ones (the message lists them)."""

    def __init__(self, message: str, *, field: str, choices: tuple[str, ...]) -> None:
        super().__init__(f"{message}; installed: {', '.join(choices) or 'none'}", field=field)
        self.choices = choices


class PluginError(SpecError):
    """A spec names a plugin that is installed but broken (it fails to import or is not a
    workload or optimizer); the message carries the plugin's error."""


class DatasetNotFoundError(RobustnessError, FileNotFoundError):
    """A dataset's files are not where they should be; the message says where they go."""


class DatasetUnavailableError(SpecError, DatasetNotFoundError):
    """A study names a dataset that is not where the study would run; ``field`` is
    ``"dataset"`` and the message is the one ``robustness data status`` prints, unprefixed."""

    def __init__(self, message: str) -> None:
        RobustnessError.__init__(self, message)
        self.field = "dataset"


class DataArchiveError(RobustnessError):
    """An archive given to ``robustness data import`` is unreadable or holds no such dataset."""


class StudyNotFoundError(RobustnessError, LookupError):
    """No study has this id."""


class StudyStateError(RobustnessError):
    """The study is in a state that does not allow the operation (e.g. cancel a finished one)."""


class TrackingError(RobustnessError):
    """The MLflow tracking store could not be reached or answered something unexpected."""


class ClusterError(RobustnessError):
    """The Ray cluster could not be reached or refused the work."""
