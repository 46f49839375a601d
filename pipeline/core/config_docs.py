"""Typed configs described for people, from the configs themselves: a resolved config as
YAML with every key's type, default and docstring as comments (``--show-config``), and the
Markdown reference of every key (``docs/config-reference.md``). Nothing here restates a
field: names, types, defaults, bounds and docs are read from the pydantic classes."""

from __future__ import annotations

import enum
import re
import textwrap
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

COMMENT_WIDTH = 88
"""Columns of a ``--show-config`` comment line (indent included)."""


@dataclass(frozen=True)
class KeyDoc:
    """One key of a config: what a reader needs to set it."""

    key: str
    """Dotted key as an override names it (``training.epochs``)."""
    type: str
    default: str
    """The default as YAML (``-`` for a section or a value computed at run time)."""
    doc: str
    """The field's docstring as one paragraph."""


def one_paragraph(text: str | None) -> str:
    """A docstring in one paragraph, RST's double backquotes as Markdown's single ones."""
    return " ".join((text or "").split()).replace("``", "`")


def field_doc(field: FieldInfo) -> str:
    """The field's docstring in one paragraph."""
    return one_paragraph(field.description)


def type_name(annotation: Any) -> str:
    """A type as a reader writes it: ``int``, ``float or null``, ``one of: relu, elu``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is Literal:
        return "one of: " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        named = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(named) + (" or null" if type(None) in args else "")
    if origin in (list, tuple):
        inner = type_name(args[0]) if args else "any"
        return f"list of {inner}"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of: " + ", ".join(str(m.value) for m in annotation)
    if isinstance(annotation, type):
        return {"str": "text", "NoneType": "null"}.get(annotation.__name__, annotation.__name__)
    return str(annotation).replace("typing.", "")


def bounds(field: FieldInfo) -> str:
    """``>= 1``, ``in (0, 1]`` ...: the numeric bounds pydantic checks, as text."""
    found: dict[str, Any] = {}
    for item in field.metadata:
        for name in ("ge", "gt", "le", "lt"):
            value = getattr(item, name, None)
            if value is not None:
                found[name] = value
    low = next(((n, found[n]) for n in ("ge", "gt") if n in found), None)
    high = next(((n, found[n]) for n in ("le", "lt") if n in found), None)
    if low and high:
        return (f"in {'[' if low[0] == 'ge' else '('}{low[1]}, "
                f"{high[1]}{']' if high[0] == 'le' else ')'}")  # fmt: skip
    if low:
        return f"{'>=' if low[0] == 'ge' else '>'} {low[1]}"
    if high:
        return f"{'<=' if high[0] == 'le' else '<'} {high[1]}"
    return ""


def yaml_value(value: Any) -> str:
    """One value in YAML flow style, as an override or a config file takes it."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, enum.Enum):
        value = value.value
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


def _default(field: FieldInfo) -> Any:
    if field.default is not PydanticUndefined:
        return field.default
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return PydanticUndefined


def _is_section(annotation: Any) -> bool:
    """A nested config (a model, or a union of models such as the architectures)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    if typing.get_origin(annotation) is typing.Annotated:
        return _is_section(typing.get_args(annotation)[0])
    args = typing.get_args(annotation)
    return bool(args) and all(
        isinstance(a, type) and issubclass(a, BaseModel) for a in args if a is not type(None)
    )


def _variants(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) is typing.Annotated:
        return _variants(typing.get_args(annotation)[0])
    return [a for a in typing.get_args(annotation) if isinstance(a, type)
            and issubclass(a, BaseModel)]  # fmt: skip


def _variant_label(cls: type[BaseModel]) -> str:
    name = cls.model_fields.get("name")
    literal = typing.get_args(name.annotation) if name is not None else ()
    return f"{literal[0]}" if literal else cls.__name__


def key_docs(cls: type[BaseModel], prefix: str = "") -> Iterator[KeyDoc]:
    """Every key of ``cls``, sections first named then walked; a union of architectures is
    walked once per member, its keys headed ``model (name: cnn1d)``."""
    for name, field in cls.model_fields.items():
        if field.exclude:  # kept out of saved configs (a run-time choice such as the backend)
            continue
        key = f"{prefix}{name}"
        if _is_section(field.annotation):
            variants = _variants(field.annotation)
            yield KeyDoc(key, "section", "-", field_doc(field))
            for variant in variants:
                label = f"{key} (name: {_variant_label(variant)})" if len(variants) > 1 else key
                if len(variants) > 1:
                    yield KeyDoc(label, "section", "-", (variant.__doc__ and " ".join(
                        variant.__doc__.split())) or "")  # fmt: skip
                yield from key_docs(variant, f"{key}.")
            continue
        default = _default(field)
        shown = "-" if default is PydanticUndefined else yaml_value(default)
        kind = type_name(field.annotation)
        limit = bounds(field)
        yield KeyDoc(key, f"{kind} ({limit})" if limit else kind, shown, field_doc(field))


def reference_markdown(
    title: str, intro: str, sections: list[tuple[str, type[BaseModel], str]]
) -> str:
    """A Markdown page: per config (heading, class, what it configures) a table of every
    key, its type, default and docstring."""
    lines = [f"# {title}", "", intro, ""]
    for heading, cls, intro in sections:
        lines += [f"## {heading}", "", intro, "",
                  "| key | type | default | what it does |", "|---|---|---|---|"]  # fmt: skip
        for doc in key_docs(cls):
            cells = [f"`{doc.key}`", doc.type, f"`{doc.default}`" if doc.default != "-" else "-",
                     doc.doc]  # fmt: skip
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def commented_yaml(config: BaseModel, indent: int = 0) -> str:
    """``config`` as YAML a config file takes, each key preceded by a comment with its
    docstring, type, bounds and default; sections nest."""
    lines: list[str] = []
    pad = "  " * indent
    for name, field in type(config).model_fields.items():
        if field.exclude:
            continue
        value = getattr(config, name)
        doc = field_doc(field)
        if isinstance(value, BaseModel):
            lines += _comment(doc, pad)
            lines.append(f"{pad}{name}:")
            lines.append(commented_yaml(value, indent + 1))
            continue
        default = _default(field)
        facts = type_name(field.annotation)
        limit = bounds(field)
        if limit:
            facts += f", {limit}"
        if default is not PydanticUndefined:
            facts += f"; default {yaml_value(default)}"
        lines += _comment(f"{doc} [{facts}]" if doc else f"[{facts}]", pad)
        lines.append(f"{pad}{name}: {yaml_value(value)}")
    return "\n".join(lines)


def _comment(text: str, pad: str) -> list[str]:
    if not text:
        return []
    width = max(40, COMMENT_WIDTH - len(pad) - 2)
    return [f"{pad}# {line}" for line in textwrap.wrap(text, width, break_on_hyphens=False)]


def help_text(cls: type[BaseModel], dotted: str) -> str:
    """The docstring of the field ``dotted`` (``training.deterministic``) of ``cls``, as a
    command-line option's help: the option and the config key document each other."""
    model: type[BaseModel] = cls
    parts = dotted.split(".")
    for part in parts[:-1]:
        model = _variants(model.model_fields[part].annotation)[0]
    text = field_doc(model.model_fields[parts[-1]])
    return re.sub(r"`([^`]*)`", r"\1", text)
