"""Component options checked against their factory's annotations, before anything is built.

Values arrive as TOML literals (``-P noise=0.5``), config entries or Python objects. A value is
converted where the spelling is unambiguous (``True``/``yes``/``1`` for a bool, ``3`` for a
float, a number for a text option) and refused otherwise, with the option, the type it needs and
the way out; a float option takes finite numbers only. Options without an annotation are
checked against their default's type; ``Any`` and types prmh does not know pass as given.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prmh.errors import PrmhError

TRUE = ("true", "yes", "on", "1")
FALSE = ("false", "no", "off", "0")
SECRET_WORDS = {"key", "apikey", "token", "secret", "password"}  # a word of an option's name


def is_number(value: Any, finite: bool = False) -> bool:
    """An int or a float, not a bool (``True`` is 1 to Python); with ``finite``, not nan or
    infinite either. The one test of a number read from a file, a record or a server."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return not finite or math.isfinite(value)


class OptionTypeError(ValueError):
    """A value that does not fit the type; the message says what it needed."""


class AtLeast(typing.NamedTuple):
    """The least value a number option takes, checked with its type before anything is built:
    ``max_length: Annotated[int, AtLeast(1)] | None``."""

    low: float

    def admits(self, value: float) -> bool:
        return value >= self.low

    def words(self) -> tuple[str, str]:
        return f"at least {self.low:g}", f">= {self.low:g}"


class AtMost(typing.NamedTuple):
    """The largest value a number option takes: ``Annotated[float, Above(0), AtMost(1)]``."""

    high: float

    def admits(self, value: float) -> bool:
        return value <= self.high

    def words(self) -> tuple[str, str]:
        return f"at most {self.high:g}", f"<= {self.high:g}"


class Above(typing.NamedTuple):
    """A bound the option's value must exceed: ``gpu_memory_utilization`` is above 0."""

    low: float

    def admits(self, value: float) -> bool:
        return value > self.low

    def words(self) -> tuple[str, str]:
        return f"above {self.low:g}", f"> {self.low:g}"


BOUNDS = (AtLeast, AtMost, Above)


def _bounds(hint: Any) -> list[Any]:
    return [m for m in hint.__metadata__ if isinstance(m, BOUNDS)]


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE + FALSE:
        return value.strip().lower() in TRUE
    raise OptionTypeError("true or false (also yes/no, on/off, 1/0)")


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise OptionTypeError("a whole number")


def _float(value: Any) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise OptionTypeError("a finite number")
    return number


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise OptionTypeError("text")


SCALARS: dict[Any, Callable[[Any], Any]] = {bool: _bool, int: _int, float: _float, str: _str}


def convert(value: Any, hint: Any) -> Any:
    """``value`` as ``hint`` asks, or ``OptionTypeError`` naming what it needed."""
    if hint in SCALARS:
        return SCALARS[hint](value)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        bounds = _bounds(hint)
        if not bounds:
            return convert(value, args[0])
        named = {int: "a whole number", float: "a finite number"}.get(args[0], "a value")
        limits = " and ".join(b.words()[0] for b in bounds)
        needs = OptionTypeError(f"{named} {'of ' * limits.startswith('at ')}{limits}")
        try:
            value = convert(value, args[0])
        except OptionTypeError:
            raise needs from None
        if not all(b.admits(value) for b in bounds):
            raise needs
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        needs = []
        for option in (a for a in args if a is not type(None)):
            try:
                return convert(value, option)
            except OptionTypeError as e:
                needs.append(str(e))
        raise OptionTypeError(" or ".join(needs))
    if origin in (list, tuple, Sequence) and args:
        inner = args[0]
        if isinstance(value, list | tuple):
            try:
                return type(value)(convert(v, inner) for v in value)
            except OptionTypeError as e:
                raise OptionTypeError(f"a list of {e}") from None
        return convert(value, inner)  # one value where a list is allowed: factories take it
    return value


def _hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """The factory's resolved annotations; a wrapper's (``__wrapped__``) are its target's."""
    target = inspect.unwrap(factory)
    target = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # an annotation that cannot be resolved is not checked
        return {}


def check_options(
    factory: Callable[..., Any], args: Mapping[str, Any], what: str
) -> dict[str, Any]:
    """The user's ``args`` converted to the factory's parameter types; ``what`` names the
    component in errors (``prm 'oracle'``)."""
    if not args:
        return {}
    params = inspect.signature(factory).parameters
    hints = _hints(factory)
    out = dict(args)
    for key, value in args.items():
        param = params.get(key)
        if param is None:
            continue
        hint = hints.get(key, _annotation(param))
        if hint is inspect.Parameter.empty and param.default not in (None, param.empty):
            hint = type(param.default)
        try:
            out[key] = convert(value, hint)
        except OptionTypeError as e:
            secret = SECRET_WORDS & set(key.lower().replace("-", "_").split("_"))
            shown = "***" if secret else repr(value)  # api_key, hf_token; not max_new_tokens
            raise PrmhError(f"{what}: option {key!r} needs {e}, got {shown}.") from None
    return out


def _annotation(param: inspect.Parameter) -> Any:
    """A parameter's own annotation where it is a type (a signature built in code, as a
    wrapper's added options are), not a postponed string."""
    return param.empty if isinstance(param.annotation, str) else param.annotation


def _type_name(hint: Any) -> str:
    if hint is inspect.Parameter.empty:
        return "any"
    if isinstance(hint, type):
        return hint.__name__
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return " ".join([_type_name(args[0]), *(b.words()[1] for b in _bounds(hint))])
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else _type_name(a) for a in args)
    return str(hint).replace("typing.", "").replace("collections.abc.", "")


def describe(factory: Callable[..., Any]) -> list[tuple[str, str, str]]:
    """Each option of ``factory``: (name, type, default) as text, for ``prmh list KIND NAME``."""
    hints = _hints(factory)
    out = []
    for name, param in inspect.signature(factory).parameters.items():
        if param.kind not in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
            continue
        default = "(required)" if param.default is param.empty else repr(param.default)
        hint = hints.get(name, param.annotation)
        if hint is param.empty and param.default not in (None, param.empty):
            hint = type(param.default)
        out.append((name, _type_name(hint), default))
    return out
