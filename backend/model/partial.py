"""Answers as far as they validate: what the wizard reopens from a saved answers file.

`check` and `--auto` refuse a file with any problem (backend.model.answers.parse). The wizard
instead keeps every value that validates and sets aside each one that does not, with the model's
own message and the text the file gave (to show in its input, where the user fixes it; never for a
secret field whose value is not a reference: that text may be the secret itself). A required value
the file lacks takes the caller's default (the wizard's own target), its problem kept; a section
that cannot validate without a value nobody can default (a real host's token) is set aside whole,
its values' texts kept. Unreadable, non-YAML or non-mapping files stay bad input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from backend.errors import BadInput
from backend.model import answers as answers_mod
from backend.model.answers import SECRET_FIELDS, Answers, Problem
from backend.secrets import SecretRef

_MAX_ROUNDS = 32  # each round sets aside or defaults at least one value: a file has far fewer problems


@dataclass(frozen=True)
class PartialAnswers:
    """The answers that validated, and what was set aside: `problems` (dotted field -> the model's
    message) and `raw` (dotted field -> the text the file gave for a value not loaded)."""

    answers: Answers
    problems: dict[str, str]
    raw: dict[str, str]
    source: str


def load_partial(path: str | os.PathLike[str], defaults: dict[str, Any]) -> PartialAnswers:
    """An answers file as far as it validates; `defaults` gives the required values it may lack
    (nested as in the file: {"proxmox": {"url": ...}}). BadInput when it cannot be read at all."""
    source = str(path)
    located = answers_mod.read(answers_mod.read_file(path), source)
    return settle(located.data, defaults, source)


def settle(data: dict[str, Any], defaults: dict[str, Any], source: str = "answers") -> PartialAnswers:
    """`data` (an answers mapping) validated, setting aside what does not validate (see the module doc)."""
    data = _copy(data)
    problems: dict[str, str] = {}
    raw: dict[str, str] = {}
    for _ in range(_MAX_ROUNDS):
        try:
            return PartialAnswers(Answers.model_validate(data), problems, raw, source)
        except ValidationError as exc:
            found = answers_mod.problems(exc)
        progressed = False
        for problem in found:
            if problem.field not in raw:  # a value of a section set aside is not itself a problem
                problems.setdefault(problem.field, _words(problem))
            progressed |= (_set_aside(data, problem.loc, raw) or _default(data, problem.loc, defaults)
                           or _set_aside(data, problem.loc[:-1], raw))
        if not progressed:
            break
    raise BadInput(f"{source}: " + "; ".join(f"{field}: {message}" for field, message in problems.items()))


def _words(problem: Problem) -> str:
    return problem.message + (f"; {problem.hint}" if problem.hint else "")


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _parent(data: dict[str, Any], loc: tuple) -> dict[str, Any] | None:
    for key in loc[:-1]:
        data = data.get(key) if isinstance(data, dict) else None
        if not isinstance(data, dict):
            return None
    return data


def _set_aside(data: dict[str, Any], loc: tuple, raw: dict[str, str]) -> bool:
    """Take the value at `loc` out of `data`, keeping the texts it gave; False when there is none."""
    parent = _parent(data, loc) if loc else None
    if parent is None or loc[-1] not in parent:
        return False
    _keep_text(loc, parent.pop(loc[-1]), raw)
    return True


def _keep_text(loc: tuple, value: Any, raw: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _keep_text((*loc, key), item, raw)
        return
    field = ".".join(str(part) for part in loc)
    if isinstance(value, list) or field in raw:
        return
    text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    if field in SECRET_FIELDS:
        try:
            SecretRef.parse(text)
        except ValueError:
            return  # not a reference: maybe the secret itself, never shown
    raw[field] = text


def _default(data: dict[str, Any], loc: tuple, defaults: dict[str, Any]) -> bool:
    """Give a required value the file lacks its default; False when there is none (or it is there)."""
    value: Any = defaults
    for key in loc:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None or not loc:
        return False
    for key in loc[:-1]:
        child = data.get(key)
        if not isinstance(child, dict):
            child = data[key] = {}
        data = child
    if loc[-1] in data:
        return False
    data[loc[-1]] = _copy(value)
    return True
