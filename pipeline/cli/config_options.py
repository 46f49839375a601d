"""Command-line options made from a typed config: one ``--field-name`` per field, with the
field's type, default and docstring, so a command never restates what its config says.

A command decorated with :func:`config_options` receives the values in one keyword,
``config_values`` (field name -> value as given), and builds its config from them; the
config's own validation then reports a bad value, and :func:`option_error` names the option.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from pipeline.core.config_docs import help_text

F = TypeVar("F", bound=Callable[..., Any])

VALUES = "config_values"
"""The keyword that receives the options' values."""


def _option_type(annotation: Any) -> Any:
    """What Typer can parse for a field: the bare type (bounds are the config's to check)."""
    if typing.get_origin(annotation) is Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def config_options(cls: type[BaseModel], exclude: Iterable[str] = ()) -> Callable[[F], F]:
    """Add one option per field of ``cls`` (but ``exclude`` and fields kept out of saved
    configs) after the command's own parameters; see the module docstring."""
    skipped = set(exclude)
    fields = {name: field for name, field in cls.model_fields.items()
              if name not in skipped and not field.exclude}  # fmt: skip

    def decorate(command: F) -> F:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values()
               if p.name != VALUES]  # fmt: skip
        added = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=field.default,
                annotation=Annotated[
                    _option_type(field.annotation), typer.Option(help=help_text(cls, name))
                ],
            )
            for name, field in fields.items()
        ]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in fields if name in kwargs}
            return command(*args, **kwargs, **{VALUES: values})

        wrapper.__signature__ = inspect.Signature([*own, *added])  # type: ignore[attr-defined]
        return typing.cast(F, wrapper)

    return decorate


def option_error(exc: ValidationError) -> str:
    """The first invalid option as ``--name: problem (got value)``."""
    first = exc.errors(include_url=False)[0]
    option = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "options"
    return f"{option}: {first['msg']} (got {first.get('input')!r})"
