/* The per-weight term of the DIAG KL under the ARD-optimal prior (docs/prob.md, "DIAG"), shared
 * by kvi_diag_kl_ard and the optimizer pass that adds the KL gradient while it updates the
 * weights (kvi_optimizer_step_ard), so that both give the same numbers (private).
 *
 *   2 KL_ij = log(mu^2 + sigma^2) - 2 log sigma = log(1 + mu^2 / sigma^2),
 *   d KL_ij / d mu = mu / S,  d KL_ij / d log sigma = sigma^2 / S - 1,  S = mu^2 + sigma^2.
 *
 * Finite for |mu| < 1e15 and |log sigma| < 40 (kvi_diag_kl_ard_fusable). */
#ifndef KRONVI_PROB_DIAG_ARD_H
#define KRONVI_PROB_DIAG_ARD_H

#include "core/vmath.h"
#include "kronvi/core.h"

/* Returns 2 KL_ij; *dmu and *dls get gsr times the two derivatives. Always inlined: the loops
 * that call it vectorize only then. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline kvi_real
kvi__diag_ard_term(kvi_real mu, kvi_real ls, kvi_real gsr, kvi_real *dmu, kvi_real *dls) {
#ifdef KVI_DOUBLE
  kvi_real var = exp(2 * ls), S = mu * mu + var, iS = 1 / S, logS = log(S);
#else
  kvi_real var = kvi__vexpf(2 * ls), S = mu * mu + var, iS = 1 / S, logS = kvi__vlogf(S);
#endif
  *dmu = gsr * mu * iS;
  *dls = gsr * (var * iS - 1);
  return logS - 2 * ls;
}

/* The fixed spans over which the KL's sum is taken (partial sums added in span order): the same
 * value on any thread count and in either pass. */
#define KVI__KL_SPAN 1024

#endif
