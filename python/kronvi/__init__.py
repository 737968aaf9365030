"""kronvi: sparse Bayesian deep learning (Matrix Normal posteriors, K-FAC) from Python.

A binding of kronvi's stable C API (libkronvi.so, kronvi/kronvi.h) through ctypes: nothing is
compiled at import. Arrays go in and come out as numpy arrays; inputs must be C-contiguous and
of the library's precision (float32 for libkronvi, float64 for libkronvi_f64 with the
environment variable KRONVI_PRECISION=f64); labels are int32. Nothing is converted silently:
an array of another dtype, shape or layout raises KronviError, as does a closed handle and
every failure of the library, with the library's message.

The library is found through the environment variable KRONVI_LIBRARY (a path), else next to
the package (an installed prefix), else in a source tree's build/lib, else on the system's
library path.

Classes:
    Dataset    features with class labels or regression targets
    Network    a network, its variational posterior and training state (checkpoints)
    Optimizer  optimizer settings (adam, sgd, kfac, ...)
    Learner    trains a Network with an Optimizer, calling back with progress
    KronviError  the exception of every failure

Example:
    >>> import numpy as np, kronvi
    >>> x = np.random.default_rng(0).random((200, 4), dtype=np.float32)
    >>> y = (x[:, 0] > 0.5).astype(np.int32)
    >>> train = kronvi.Dataset(x, labels=y)
    >>> net = kronvi.Network("4-16-2", family="mn", seed=1)
    >>> kronvi.Learner(net, kronvi.Optimizer("adam", lr=1e-2), epochs=5, batch=50).fit(train)
    False
    >>> probs, entropy = net.predict(x[:3], samples=10)
"""

import ctypes

import numpy as np

from . import _lib
from ._lib import C

__all__ = [
    "KronviError",
    "Dataset",
    "Network",
    "Optimizer",
    "Learner",
    "version",
    "library_path",
    "precision",
    "set_num_threads",
    "num_threads",
]

_STATUS_NAMES = {
    0: "KVI_OK",
    1: "KVI_ERR_ARG",
    2: "KVI_ERR_SHAPE",
    3: "KVI_ERR_NONFINITE",
    4: "KVI_ERR_NOMEM",
    5: "KVI_ERR_IO",
    6: "KVI_ERR_FORMAT",
    7: "KVI_ERR_LINALG",
    8: "KVI_ERR_UNSUPPORTED",
    9: "KVI_ERR_STATE",
    10: "KVI_ERR_COMM",
}


class KronviError(Exception):
    """A failure of kronvi: bad input, a closed handle, or an error of the library.

    Attributes:
        status: the kvi_status code (1 invalid argument, 2 shape mismatch, 5 I/O, ...).
        status_name: its name ("KVI_ERR_SHAPE").
        message: the library's message (kvi_error_message) or the binding's check.
    """

    def __init__(self, status, message):
        self.status = int(status)
        self.status_name = _STATUS_NAMES.get(self.status, "KVI_ERR_%d" % self.status)
        self.message = message
        super().__init__("%s: %s" % (self.status_name, message))


def _check(status):
    """Raises KronviError with the library's message when status is not KVI_OK."""
    if status != 0:
        msg = C.error_message().decode("utf-8", "replace")
        if not msg:
            msg = C.status_message(status).decode()
        raise KronviError(status, msg)


def _fail(status, message):
    raise KronviError(status, message)


def _array(a, dtype, name, where, ndim=None, shape=None):
    """a itself if it is a C-contiguous numpy array of dtype (and ndim, shape), else raises."""
    if not isinstance(a, np.ndarray):
        _fail(1, "%s: %s must be a numpy array, not %s" % (where, name, type(a).__name__))
    if a.dtype != np.dtype(dtype):
        _fail(
            1,
            "%s: %s has dtype %s, expected %s (HINT: %s.astype(np.%s))"
            % (where, name, a.dtype, np.dtype(dtype), name, np.dtype(dtype).name),
        )
    if ndim is not None and a.ndim != ndim:
        _fail(2, "%s: %s has %d dimensions %s, expected %d" % (where, name, a.ndim, a.shape, ndim))
    if shape is not None:
        for i, (got, want) in enumerate(zip(a.shape, shape)):
            if want is not None and got != want:
                _fail(2, "%s: %s has shape %s, expected %s in dimension %d" % (where, name, a.shape, want, i))
    if not a.flags.c_contiguous:
        _fail(1, "%s: %s is not C-contiguous (HINT: np.ascontiguousarray(%s))" % (where, name, name))
    if a.size == 0:
        _fail(2, "%s: %s is empty" % (where, name))
    return a


def _ptr(a, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


def _options(where, opts):
    """The "key=value ..." string of a dict of options (bool as 0/1)."""
    parts = []
    for k, v in opts.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = int(v)
        v = str(v)
        if not v or any(c in v for c in " ,=\t\n"):
            _fail(1, "%s: option %s=%r: a value without spaces, commas or '='" % (where, k, v))
        parts.append("%s=%s" % (k, v))
    return " ".join(parts).encode()


def _int(v, where, name, lo=None, hi=None):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        _fail(1, "%s: %s must be an integer, not %r" % (where, name, v))
    v = int(v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        _fail(1, "%s: %s = %d outside [%s, %s]" % (where, name, v, lo, hi))
    return v


def _float(v, where, name):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        _fail(1, "%s: %s must be a number, not %r" % (where, name, v))
    return float(v)


def _path(p, where):
    if not isinstance(p, (str, bytes)) and not hasattr(p, "__fspath__"):
        _fail(1, "%s: path must be a string, not %r" % (where, p))
    import os

    return os.fsencode(p)


class _Handle:
    """An owned pointer to a library object, freed by close() (or when collected)."""

    _free = None
    _what = "handle"

    def __init__(self, ptr):
        self._h = ptr

    @classmethod
    def _wrap(cls, ptr):
        """An object of cls around a pointer the library returned."""
        obj = cls.__new__(cls)
        _Handle.__init__(obj, ptr)
        return obj

    def _ptr(self, where):
        if self._h is None:
            _fail(9, "%s: the %s is closed" % (where, self._what))
        return self._h

    @property
    def closed(self):
        """True once close() was called."""
        return self._h is None

    def close(self):
        """Frees the library object; later calls on this object raise KronviError."""
        if self._h is not None:
            type(self)._free(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def version():
    """The library's version and precision, e.g. "0.1.0 f32"."""
    return C.version(None, None, None).decode()


def library_path():
    """The path (or name) of the loaded libkronvi shared library."""
    return _lib.PATH


def precision():
    """"f32" (libkronvi, float32 arrays) or "f64" (libkronvi_f64, float64 arrays)."""
    return _lib.PRECISION


def set_num_threads(n):
    """Sets the threads of the library's parallel loops and BLAS calls (n >= 1).

    Results do not depend on the thread count. Without a call the library takes OpenMP's
    count (OMP_NUM_THREADS, else the CPUs available) at its first matrix product."""
    _check(C.set_num_threads(_int(n, "set_num_threads", "n", 1, 1024)))


def num_threads():
    """The threads the library uses."""
    return C.num_threads()


from ._objects import Dataset, Learner, Network, Optimizer  # noqa: E402
