"""An async method of an object as a coroutine function that trainers accept and can pickle.

Trainers decide whether to ``await`` a reward by asking if it is a coroutine function: TRL up to
1.10 and veRL 0.9 with ``inspect.iscoroutinefunction(fn)`` (TRL 1.16: ``is_async_callable``, which
also looks at ``fn.__call__``), older TRL with ``asyncio.iscoroutinefunction``. A closure passes
those checks but cannot be pickled (TRL's ``AsyncGRPOTrainer`` pickles its reward functions into
a child process), a bound method pickles but is named after the method (TRL logs rewards by
``__name__``), and a callable object with an ``async __call__`` fails ``inspect`` on Python 3.11.
`BoundCoroutine` is a callable object that also carries the function attributes ``inspect``
reads (``__code__`` of an ``async def``, like Cython's functions do), so every check says yes.
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["BoundCoroutine"]


class BoundCoroutine:
    """``getattr(target, method)`` (an ``async def``), callable as a coroutine function named
    ``name``; pickles as ``(target, method, name)``."""

    def __init__(self, target: Any, method: str, name: str):
        if not inspect.iscoroutinefunction(getattr(target, method)):
            raise TypeError(f"{type(target).__name__}.{method} is not an async method")
        self.target, self.method = target, method
        self.__name__ = self.__qualname__ = name

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self.target, self.method)(*args, **kwargs)

    # What inspect's function-like test reads (inspect._signature_is_functionlike): with these,
    # ``inspect.iscoroutinefunction(obj)`` reads CO_COROUTINE from the code of ``__call__``.
    __code__ = __call__.__code__
    __defaults__ = None
    __kwdefaults__ = None

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(getattr(self.target, self.method))

    def __repr__(self) -> str:
        return f"<async reward {self.__name__}: {type(self.target).__name__}.{self.method}>"
