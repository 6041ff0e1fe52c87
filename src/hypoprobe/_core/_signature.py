"""A function's own parameter list as source, for a wrapper that takes and passes on exactly it.

A wrapper written ``def probed(*args, **kwargs)`` builds a dict on every call, even an
empty one, and unpacks it again into the wrapped call: on a call as short as a probed
one that is an eighth of the probe's cost. A wrapper with the wrapped function's own
parameters (``def probed(account_id, limit):``, forwarding ``fn(account_id, limit)``)
builds nothing. Python binds the arguments exactly as the wrapped function would, and the
wrapper's defaults *are* the function's (the same tuple and dict objects, assigned to its
``__defaults__`` and ``__kwdefaults__`` once it is made), so what the function receives
is what it would have received called directly. The one difference: a call the function
could not accept raises its ``TypeError`` (same message) from the wrapper, before any
timing, so it is not counted as a call.

Only plain Python functions qualify; for anything else (builtins, ``functools.partial``,
callable objects) and for parameter names the wrapper's own body uses, :func:`forwarding`
returns None and the caller keeps ``*args, **kwargs``.

Example::

    def fetch(account_id, limit=10, *, fresh=False): ...

    forwarding(fetch, frozenset())
    # ("account_id, limit, *, fresh", "account_id, limit, fresh=fresh")
"""

from __future__ import annotations

import inspect
import keyword
import types
from collections.abc import Callable, Collection
from typing import Any

__all__: list[str] = []

#: A parameter list and the call arguments forwarding it: ``def w(<params>): fn(<args>)``.
Forwarding = tuple[str, str]

#: What a wrapper with ``*args, **kwargs`` takes and forwards.
GENERIC: Forwarding = ("*args, **kwargs", "*args, **kwargs")


def forwarding(fn: Callable[..., Any], reserved: Collection[str]) -> Forwarding | None:
    """``fn``'s parameter list and the arguments passing every parameter on, or None.

    The list names no defaults: the wrapper made from the text must then be given ``fn``'s
    own (see :func:`share_defaults`). None when ``fn`` is not a plain Python function, when
    its defaults do not fit its code (assigned by hand), or when a parameter is named as
    one of ``reserved`` (the names the wrapper's body uses).
    """
    if type(fn) is not types.FunctionType:
        return None
    code = fn.__code__
    positional = code.co_varnames[: code.co_argcount]
    keyword_only = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
    rest = code.co_argcount + code.co_kwonlyargcount
    star = code.co_varnames[rest] if code.co_flags & inspect.CO_VARARGS else None
    rest += star is not None
    double_star = code.co_varnames[rest] if code.co_flags & inspect.CO_VARKEYWORDS else None
    names = [*positional, *keyword_only, *filter(None, (star, double_star))]
    if any(not _plain(name) or name in reserved for name in names):
        return None
    defaults = fn.__defaults__ or ()
    kwdefaults = fn.__kwdefaults__ or {}
    if len(defaults) > len(positional) or not set(kwdefaults) <= set(keyword_only):
        return None
    params: list[str] = []
    args: list[str] = []
    for i, name in enumerate(positional):
        params.append(name)
        args.append(name)
        if i + 1 == code.co_posonlyargcount:
            params.append("/")
    if star is not None:
        params.append(f"*{star}")
        args.append(f"*{star}")
    elif keyword_only:
        params.append("*")
    for name in keyword_only:
        params.append(name)
        args.append(f"{name}={name}")
    if double_star is not None:
        params.append(f"**{double_star}")
        args.append(f"**{double_star}")
    return ", ".join(params), ", ".join(args)


def share_defaults(wrapper: types.FunctionType, fn: types.FunctionType) -> None:
    """Give ``wrapper`` (made from :func:`forwarding`'s text) the defaults of ``fn`` itself.

    The same objects, not copies: a mutable default is the one ``fn`` would use, and a
    keyword-only default changed in place is seen by both. (Assigning ``fn.__defaults__``
    or ``fn.__code__`` anew later, as a code reloader may, is not seen by the wrapper:
    decorate again.)
    """
    wrapper.__defaults__ = fn.__defaults__
    wrapper.__kwdefaults__ = fn.__kwdefaults__


def _plain(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)
