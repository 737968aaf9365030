"""Loading libkronvi and declaring its functions for ctypes (internal to the kronvi package)."""

import ctypes
import ctypes.util
import os

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))


def _precision():
    p = os.environ.get("KRONVI_PRECISION", "f32")
    if p not in ("f32", "f64"):
        raise ImportError("kronvi: KRONVI_PRECISION must be f32 or f64, not %r" % p)
    return p


PRECISION = _precision()
LIBNAME = "kronvi" if PRECISION == "f32" else "kronvi_f64"
PREFIX = "kvi_" if PRECISION == "f32" else "kvid_"
REAL = np.float32 if PRECISION == "f32" else np.float64
C_REAL = ctypes.c_float if PRECISION == "f32" else ctypes.c_double


def _candidates():
    """Where libkronvi is looked for, in order."""
    env = os.environ.get("KRONVI_LIBRARY")
    if env:
        return [env]
    so = "lib%s.so.0" % LIBNAME
    return [
        os.path.join(_HERE, "..", "..", "..", so),  # PREFIX/lib/python3/dist-packages/kronvi
        os.path.join(_HERE, "..", "..", "build", "lib", so),  # a source tree's build
        so,  # the system's library path
    ]


def _load():
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(path + " (absent)")
            continue
        try:
            return ctypes.CDLL(path), os.path.normpath(path) if os.sep in path else path
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError(
        "kronvi: cannot load lib%s.so.0; tried: %s (HINT: set KRONVI_LIBRARY to its path)"
        % (LIBNAME, "; ".join(tried))
    )


LIB, PATH = _load()


class Scores(ctypes.Structure):
    """kvi_scores of kronvi/kronvi.h."""

    _fields_ = [
        ("rows", ctypes.c_int64),
        ("accuracy", ctypes.c_double),
        ("nll", ctypes.c_double),
        ("accuracy_bma", ctypes.c_double),
        ("nll_bma", ctypes.c_double),
        ("ece", ctypes.c_double),
        ("entropy", ctypes.c_double),
        ("entropy_bma", ctypes.c_double),
        ("accuracy_pruned", ctypes.c_double),
        ("rmse", ctypes.c_double),
        ("samples", ctypes.c_int),
    ]


class Progress(ctypes.Structure):
    """kvi_progress of kronvi/kronvi.h."""

    _fields_ = [
        ("epoch", ctypes.c_int),
        ("epochs", ctypes.c_int),
        ("end_of_epoch", ctypes.c_int),
        ("batch", ctypes.c_int64),
        ("batches", ctypes.c_int64),
        ("step", ctypes.c_int64),
        ("loss", ctypes.c_double),
        ("accuracy", ctypes.c_double),
        ("kl", ctypes.c_double),
        ("lr", ctypes.c_double),
        ("seconds", ctypes.c_double),
        ("sparsity", ctypes.c_double),
        ("val_accuracy", ctypes.c_double),
        ("test_accuracy", ctypes.c_double),
    ]


PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(Progress), ctypes.c_void_p)

_P = ctypes.c_void_p
_PP = ctypes.POINTER(ctypes.c_void_p)
_S = ctypes.c_int  # kvi_status
_STR = ctypes.c_char_p
_I = ctypes.c_int
_I64 = ctypes.c_int64
_U64 = ctypes.c_uint64
_D = ctypes.c_double
_PR = ctypes.POINTER(C_REAL)
_PD = ctypes.POINTER(ctypes.c_double)
_PI32 = ctypes.POINTER(ctypes.c_int32)
_PI64 = ctypes.POINTER(ctypes.c_int64)
_PINT = ctypes.POINTER(ctypes.c_int)

# name (without the prefix): (restype, argtypes) — the declarations of kronvi/kronvi.h
SIGNATURES = {
    "version": (_STR, [_PINT, _PINT, _PINT]),
    "error_message": (_STR, []),
    "status_message": (_STR, [_S]),
    "set_num_threads": (_S, [_I]),
    "num_threads": (_I, []),
    "dset_create": (_S, [_PP, _PR, _I64, _I, _PI32, _I]),
    "dset_create_regression": (_S, [_PP, _PR, _I64, _I, _PR, _I]),
    "dset_load_dir": (_S, [_PP, _PP, _STR, _I64, _I64]),
    "dset_set_image_shape": (_S, [_P, _I, _I, _I]),
    "dset_rows": (_I64, [_P]),
    "dset_features": (_I, [_P]),
    "dset_classes": (_I, [_P]),
    "dset_targets": (_I, [_P]),
    "dset_copy": (_S, [_P, _PR, _PI32, _PR]),
    "dset_free": (None, [_P]),
    "optim_create": (_S, [_PP, _STR]),
    "optim_set": (_S, [_P, _STR, _D]),
    "optim_get": (_S, [_P, _STR, _PD]),
    "optim_kind": (_STR, [_P]),
    "optim_free": (None, [_P]),
    "network_create": (_S, [_PP, _STR, _I, _STR]),
    "network_load": (_S, [_PP, _STR]),
    "network_save": (_S, [_P, _STR]),
    "network_inputs": (_I, [_P]),
    "network_outputs": (_I, [_P]),
    "network_arch": (_STR, [_P]),
    "network_family": (_STR, [_P]),
    "network_param_count": (_I64, [_P]),
    "network_epochs": (_I, [_P]),
    "network_task": (_STR, [_P]),
    "network_predict": (_S, [_P, _PR, _I64, _I, _I, _U64, _PD, _PD]),
    "network_evaluate": (_S, [_P, _P, _I, _U64, _D, ctypes.POINTER(Scores)]),
    "network_sparsity": (_S, [_P, _D, _PI64, _PI64]),
    "network_prune": (_S, [_P, _D, _PI64]),
    "network_compress": (_S, [_PP, _P, _D]),
    "network_free": (None, [_P]),
    "learner_create": (_S, [_PP, _P, _P, _STR]),
    "learner_set_callback": (_S, [_P, PROGRESS_FN, _P, _I]),
    "learner_fit": (_S, [_P, _P, _P, _P]),
    "learner_stopped": (_I, [_P]),
    "learner_free": (None, [_P]),
}


class _Functions:
    """The library's functions by their name without the kvi_ / kvid_ prefix."""

    def __init__(self):
        for name, (res, args) in SIGNATURES.items():
            f = getattr(LIB, PREFIX + name)
            f.restype, f.argtypes = res, args
            setattr(self, name, f)


C = _Functions()
