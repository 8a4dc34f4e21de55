"""``poolkit.shared``: one large read-only object, sent to each worker process once.

A function that captures a large object (a model, a lookup table, a NumPy array) is
pickled with it, so the object travels with every batch, to every worker. Wrapped in
``poolkit.shared``, it is written once into shared memory (pickle protocol 5, its
large buffers out of band) and each worker process maps it and loads it from there,
without copying its buffers: a NumPy array is then read in place by every worker.

In thread, async and serial modes the object is simply used where it is. Anywhere
else it is pickled (dask mode sends it by value; see ``docs/dask.md`` for
``client.scatter``).
"""

from __future__ import annotations

import contextvars
import pickle
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from poolkit import _shm

__all__ = ["Shared", "shared"]

T = TypeVar("T")

_LOCAL_WORKERS = contextvars.ContextVar("poolkit_local_workers", default=False)


class Shared(Generic[T]):
    """A read-only object that process-mode workers map from shared memory.

    Make one with ``poolkit.shared(obj)``; read the object as ``.value``. Keep the
    ``Shared`` alive while batches use it (its memory is released when it is garbage
    collected, or by ``release()``).

    Examples:
        >>> import poolkit
        >>> table = poolkit.shared({"a": 1, "b": 2})
        >>> poolkit.run_all(lambda k: table.value[k], ["a", "b"], mode="thread").values
        [1, 2]
    """

    __slots__ = ("__weakref__", "_finalizer", "_key", "_location", "_mapped", "_value")

    def __init__(self, value: T) -> None:
        self._value = value
        self._key = uuid.uuid4().hex
        self._location: tuple[str, int, list[int]] | None = None
        self._finalizer: Any = None
        self._mapped: _Mapped | None = None  # in a worker: the value and its mapping

    @property
    def value(self) -> T:
        """The object itself (in a worker process: loaded from shared memory, once)."""
        mapped = self._mapped
        return self._value if mapped is None else mapped.value

    def release(self) -> None:
        """Free the shared memory now; a later batch that uses this object shares it anew.

        Worker processes that loaded it keep it while their functions hold it.
        """
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._location = None

    def __reduce__(self) -> tuple[Any, ...]:
        if not _LOCAL_WORKERS.get():
            return (Shared, (self._value,))
        if self._location is None:
            self._export()
        return (_attach, (self._key, self._location))

    def _export(self) -> None:
        buffers: list[pickle.PickleBuffer] = []
        header = pickle.dumps(self._value, 5, buffer_callback=buffers.append)
        memory, sizes = _shm.create([header, *(buffer.raw() for buffer in buffers)])
        self._location = (memory.name, sizes[0], sizes[1:])
        self._finalizer = weakref.finalize(self, _shm.unlink, memory)

    def __repr__(self) -> str:
        return f"<Shared {type(self._value).__name__}>"


def shared(value: T) -> Shared[T]:
    """Wrap a large read-only object so each worker process gets it once, zero-copy.

    Capture the returned ``Shared`` in your function and read ``.value`` there.

    Examples:
        >>> import poolkit
        >>> weights = poolkit.shared([0.5, 2.0])
        >>> def score(x):
        ...     return x * weights.value[1]
        >>> poolkit.run_all(score, [1, 2], mode="serial").values
        [2.0, 4.0]
    """
    return Shared(value)


@contextmanager
def pickling_for_local_workers() -> Iterator[None]:
    """While pickling for worker processes of this machine: ``Shared`` goes by reference."""
    token = _LOCAL_WORKERS.set(True)
    try:
        yield
    finally:
        _LOCAL_WORKERS.reset(token)


_ATTACHED: weakref.WeakValueDictionary[str, Shared[Any]] = weakref.WeakValueDictionary()
_KEPT: list[Any] = []  # mappings still viewed by objects a function kept elsewhere


class _Mapped:
    """In a worker: a shared object's value and the mapping it lives in. When the last
    function holding it goes, the value is dropped first, then the mapping closed."""

    __slots__ = ("memory", "value")

    def __init__(self, memory: Any, value: Any) -> None:
        self.memory = memory
        self.value = value

    def __del__(self) -> None:
        self.value = None
        try:
            self.memory.close()
        except BufferError:  # someone kept a view (e.g. in worker_state): keep it mapped
            _KEPT.append(self.memory)


def _attach(key: str, location: tuple[str, int, list[int]]) -> Shared[Any]:
    """In a worker: the Shared object of ``key``, mapped and loaded the first time."""
    known = _ATTACHED.get(key)
    if known is not None:
        return known
    name, header_size, sizes = location
    memory = _shm.attach(name)
    header = memory.buf[:header_size]
    value = pickle.loads(header, buffers=_shm.parts(memory, sizes, header_size))
    header.release()
    wrapper: Shared[Any] = Shared.__new__(Shared)
    wrapper._value = None
    wrapper._key = key
    wrapper._location = location
    wrapper._finalizer = None
    wrapper._mapped = _Mapped(memory, value)
    _ATTACHED[key] = wrapper
    return wrapper
