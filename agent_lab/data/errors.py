"""Errors raised by the data package."""

from __future__ import annotations

OFFLINE_CHOICES = (
    "offline choices: 'cifar10-mini' (bundled with the repository), "
    "'imagefolder' with data_root=<folder holding train/ and test/>, 'synthetic'"
)


class DataUnavailableError(RuntimeError):
    """The files of a data set are missing and cannot be fetched."""


class DataChecksumError(DataUnavailableError):
    """A data file exists but its content is not the expected one."""
