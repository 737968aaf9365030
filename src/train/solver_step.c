/* The trainer's side of the solvers (docs/curv.md, "Training with the solvers"): each optimizer
 * step is one solver iteration on the batch's objective, the mean loss of the point network on
 * the batch (no KL: point weights), whose values, gradients and curvature products come from
 * the curvature module. The pullback-sampling diagonal (one draw per call from the stream
 * (seed, 2^42 + step)) preconditions HF, and the function-space distance of proximal
 * optimization is the batch's outputs' distance to their values at the step's start. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/curv.h"
#include "train/solver_internal.h"

typedef struct {
  kvi_curv *curv;
  kvi_objective obj;
  kvi_curv_batch b;
  kvi_real *anchor; /* (max_batch, out_size): proximal's outputs at the step's start */
  kvi_rng rng;      /* pullback sampling */
  int K;            /* outputs */
  int correct;
  bool first; /* the next evaluation is the step's first: count its hits */
} kvi__solver;

static kvi_status kvi__sv_eval(void *u, double *f, kvi_real *g) {
  kvi__solver *S = u;
  int c = 0;
  kvi_status s = kvi_curv_eval(S->curv, &S->b, f, g, S->first ? &c : NULL);
  if (!s && S->first) S->correct = c, S->first = false;
  return s;
}
static kvi_status kvi__sv_hvp(void *u, const kvi_real *v, kvi_real *out) {
  return kvi_curv_hvp(((kvi__solver *)u)->curv, v, out);
}
static kvi_status kvi__sv_gvp(void *u, const kvi_real *v, kvi_real *out) {
  return kvi_curv_gvp(((kvi__solver *)u)->curv, v, out);
}
static kvi_status kvi__sv_diag(void *u, kvi_real *d) {
  kvi__solver *S = u;
  return kvi_curv_diag_sample(S->curv, &S->rng, 1, 0, d);
}
/* lambda > 0: the outputs at the current point become the anchor. */
static kvi_status kvi__sv_fsd(void *u, double lambda) {
  kvi__solver *S = u;
  S->b.fsd = 0, S->b.anchor = NULL;
  if (!(lambda > 0)) return KVI_OK;
  double f;
  kvi_status s = kvi_curv_eval(S->curv, &S->b, &f, NULL, NULL);
  if (s) return s;
  memcpy(S->anchor, kvi_curv_outputs(S->curv), (size_t)S->b.batch * S->K * sizeof(kvi_real));
  S->b.anchor = S->anchor, S->b.fsd = lambda;
  return KVI_OK;
}

void kvi__solver_free(kvi_trainer *t) {
  kvi__solver *S = t->solver;
  if (!S) return;
  kvi_curv_free(S->curv);
  kvi_free(S->anchor);
  free(S);
  t->solver = NULL;
}

kvi_status kvi__solver_create(kvi_trainer *t) {
  kvi_net *net = t->net;
  const char *name = kvi_opt_name(t->cfg.opt.kind);
  if (net->cfg.family != KVI_FAMILY_POINT)
    return kvi_fail(KVI_ERR_UNSUPPORTED,
                    "--optimizer %s trains point networks (HINT: --family point; the curvature "
                    "module differentiates posterior means too, but the ELBO's KL and noise are "
                    "not part of the solvers' objective)",
                    name);
  if (t->cfg.task == KVI_TASK_REGRESS && t->cfg.learn_noise)
    return kvi_fail(KVI_ERR_UNSUPPORTED,
                    "--optimizer %s holds the noise precision fixed (HINT: drop --learn-noise)",
                    name);
  kvi__solver *S = calloc(1, sizeof *S);
  if (!S) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  t->solver = S;
  S->K = net->out_size;
  S->anchor = kvi_alloc((size_t)net->max_batch * net->out_size * sizeof(kvi_real));
  if (!S->anchor) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  kvi_status s = kvi_curv_create(&S->curv, net);
  if (s) return s;
  kvi_objective *o = &S->obj;
  o->n = net->params->n, o->x = net->params->data, o->user = S;
  o->eval = kvi__sv_eval, o->hvp = kvi__sv_hvp, o->gvp = kvi__sv_gvp;
  o->diag = kvi__sv_diag, o->fsd = kvi__sv_fsd;
  return KVI_OK;
}

kvi_status kvi__solver_step(kvi_trainer *t, const kvi_real *x, const int32_t *y, const kvi_real *T,
                            int b, double lr, double *loss, int *correct) {
  kvi__solver *S = t->solver;
  const bool cls = t->cfg.task == KVI_TASK_CLASSIFY;
  S->b = (kvi_curv_batch){
      cls ? KVI_LOSS_XENT : KVI_LOSS_SQUARED, x, b, y, T, kvi_net_log_beta(t->net), NULL, 0};
  S->obj.id = (uint64_t)t->step + 1; /* a new batch: a new function */
  S->rng = kvi_rng_stream(t->cfg.seed, (4ull << 40) + (uint64_t)t->step);
  S->first = true, S->correct = 0;
  kvi_status s = kvi_optimizer_solve(&t->opt, t->net->params, lr, &S->obj);
  if (s) return s;
  *loss = t->opt.info.f0, *correct = S->correct;
  if (!isfinite(*loss))
    return kvi_fail(KVI_ERR_NONFINITE, "the batch loss is %g at step %lld", *loss,
                    (long long)t->step);
  return KVI_OK;
}
