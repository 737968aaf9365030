/* Private helpers shared by the modules (not installed). */
#ifndef KRONVI_INTERNAL_H
#define KRONVI_INTERNAL_H

#include <math.h>

#include "kronvi/core.h"

#ifdef KVI_DOUBLE
#define KVI_SQRT sqrt
#define KVI_EXP exp
#define KVI_LOG log
#else
#define KVI_SQRT sqrtf
#define KVI_EXP expf
#define KVI_LOG logf
#endif

#define KVI_MIN(a, b) ((a) < (b) ? (a) : (b))
#define KVI_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
