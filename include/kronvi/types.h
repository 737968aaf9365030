/* kronvi types shared by the stable API (kronvi/kronvi.h) and the internal headers: the status
 * codes, the element type kvi_real and the export macro. Installed with kronvi/kronvi.h. */
#ifndef KRONVI_TYPES_H
#define KRONVI_TYPES_H

/* KVI_EXPORT marks the functions of the stable API (kronvi/kronvi.h), the only symbols that
 * libkronvi.so and libkronvi.a export; the library is compiled with -fvisibility=hidden. */
#if defined(__GNUC__)
#define KVI_EXPORT __attribute__((visibility("default")))
#else
#define KVI_EXPORT
#endif

/* Precision: libkronvi is single precision (kvi_real = float); libkronvi_f64 is double
 * precision and its users define KVI_DOUBLE (its pkg-config file and CMake target do). */
#ifdef KVI_DOUBLE
typedef double kvi_real;
#define KVI_REAL_NAME "f64"
#else
typedef float kvi_real;
#define KVI_REAL_NAME "f32"
#endif

/* ---- status ---------------------------------------------------------------------------- */
/* One table: code, name, meaning. Library functions return kvi_status and, on failure, leave a
 * detail message for the calling thread. The library never exits. */
#define KVI_STATUS_TABLE(X)                                                      \
  X(KVI_OK, 0, "ok")                                                             \
  X(KVI_ERR_ARG, 1, "invalid argument")                                          \
  X(KVI_ERR_SHAPE, 2, "shape mismatch")                                          \
  X(KVI_ERR_NONFINITE, 3, "non-finite value")                                    \
  X(KVI_ERR_NOMEM, 4, "out of memory")                                           \
  X(KVI_ERR_IO, 5, "input/output error")                                         \
  X(KVI_ERR_FORMAT, 6, "malformed file")                                         \
  X(KVI_ERR_LINALG, 7, "linear algebra failure (matrix not positive definite?)") \
  X(KVI_ERR_UNSUPPORTED, 8, "unsupported")                                       \
  X(KVI_ERR_STATE, 9, "invalid state")                                           \
  X(KVI_ERR_COMM, 10, "communication between processes failed")

typedef enum {
#define KVI__ENUM(name, code, msg) name = code,
  KVI_STATUS_TABLE(KVI__ENUM)
#undef KVI__ENUM
} kvi_status;

#endif
