"""Dagster ``Config`` classes derived from the plain modules' hyperparameter dataclasses.

The plain training modules own their hyperparameters (a dataclass with the thesis's values as
defaults); the assets expose the same fields as Dagster config. Deriving one from the other keeps
a single list of fields and defaults.
"""
from __future__ import annotations

import dataclasses
import typing

import dagster as dg
import pydantic


def config_from_dataclass(dataclass_type, name: str, doc: str, overrides: dict | None = None, **extra) -> type[dg.Config]:
    """A ``dg.Config`` subclass with the dataclass's fields and defaults.

    ``overrides`` maps a field name to a new ``(type, default)``; ``extra`` adds fields.
    """
    hints = typing.get_type_hints(dataclass_type)
    fields = {field.name: (hints[field.name], field.default) for field in dataclasses.fields(dataclass_type)}
    fields.update(overrides or {})
    fields.update(extra)
    config_class = pydantic.create_model(name, __base__=dg.Config, __doc__=doc, **fields)
    config_class.__module__ = dataclass_type.__module__
    return config_class
