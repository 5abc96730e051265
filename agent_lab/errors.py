"""Errors every layer may raise (kept at the ground floor so that no import points up)."""


class ConfigError(ValueError):
    """A RunConfig field holds a value outside its valid choices or range."""


class RunStoreError(RuntimeError):
    """A run folder cannot be used as asked (damaged, locked, or not a folder)."""
