"""How an error names a value its caller gave by name.

A notebook passes a keyword (`image_size=8`) and should read the keyword back; `hpsearch` passes
the same keyword from a flag (`--image-size 8`), and its user typed the flag. Each check is
written once, in the function both call, naming the value with `named` or `given`; the command
line says, once for the command it runs (`flags_named` in search.cli.main), which flag gives each
keyword.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# A keyword's flag while a command runs; None: a Python caller, who passed the keyword itself
_FLAG_OF: ContextVar[Callable[[str], str] | None] = ContextVar("flag_of", default=None)


def named(keyword: str) -> str:
    """`keyword` as its caller gave it: `image_size`, or `--image-size` on the command line."""
    flag_of = _FLAG_OF.get()
    return keyword if flag_of is None else flag_of(keyword)


def given(keyword: str, value: object) -> str:
    """`keyword` with a value, as its caller writes it: `device='cpu'`, or `--device cpu`."""
    flag_of = _FLAG_OF.get()
    return f"{keyword}={value!r}" if flag_of is None else f"{flag_of(keyword)} {value}"


def flag_naming() -> Callable[[str], str] | None:
    """How keywords are named here now, for a process this one starts to name them alike."""
    return _FLAG_OF.get()


@contextmanager
def flags_named(flag_of: Callable[[str], str] | None) -> Iterator[None]:
    """Within it, `named` and `given` name each keyword by its flag, `flag_of(keyword)` (by the
    keyword itself for None)."""
    token = _FLAG_OF.set(flag_of)
    try:
        yield
    finally:
        _FLAG_OF.reset(token)
