/* The optimizer interface: kinds, state tensors, and the chunked walk over a parameter block
 * shared by the elementwise optimizers. */
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/optim.h"
#include "kronvi/prob.h"
#include "optim/solve_internal.h"

extern const kvi_optimizer_ops kvi_adam_ops, kvi_sgd_ops, kvi_kfac_ops, kvi_noisy_kfac_ops,
    kvi_lbfgs_ops, kvi_newton_ops, kvi_lm_ops, kvi_hf_ops, kvi_proximal_ops, kvi_riemann_sgd_ops,
    kvi_riemann_momentum_ops, kvi_riemann_adam_ops, kvi_lie_ngd_ops;

/* Kinds, names and implementations, in kvi_opt_kind order. */
static const struct {
  kvi_opt_kind kind;
  const char *name;
  const kvi_optimizer_ops *ops;
} kvi__opts[] = {
    {KVI_OPT_ADAM, "adam", &kvi_adam_ops},
    {KVI_OPT_SGD, "sgd", &kvi_sgd_ops},
    {KVI_OPT_KFAC, "kfac", &kvi_kfac_ops},
    {KVI_OPT_NOISY_KFAC, "noisy-kfac", &kvi_noisy_kfac_ops},
    {KVI_OPT_LBFGS, "lbfgs", &kvi_lbfgs_ops},
    {KVI_OPT_NEWTON, "newton", &kvi_newton_ops},
    {KVI_OPT_LM, "lm", &kvi_lm_ops},
    {KVI_OPT_HF, "hf", &kvi_hf_ops},
    {KVI_OPT_PROXIMAL, "proximal", &kvi_proximal_ops},
    {KVI_OPT_RIEMANN_SGD, "riemann-sgd", &kvi_riemann_sgd_ops},
    {KVI_OPT_RIEMANN_MOMENTUM, "riemann-momentum", &kvi_riemann_momentum_ops},
    {KVI_OPT_RIEMANN_ADAM, "riemann-adam", &kvi_riemann_adam_ops},
    {KVI_OPT_LIE_NGD, "lie-ngd", &kvi_lie_ngd_ops},
};
#define KVI__NOPTS ((int)(sizeof kvi__opts / sizeof kvi__opts[0]))

kvi_opt_config kvi_opt_config_default(kvi_opt_kind kind) {
  kvi_opt_config c;
  memset(&c, 0, sizeof c);
  c.kind = kind;
  c.lr = 1e-3; /* Adam's, and the Riemannian optimizers' (Adam on the means) */
  c.beta1 = 0.9, c.beta2 = 0.999, c.eps = 1e-8;
  c.momentum = 0.9;
  c.damping = 1e-3, c.ema = 0.95, c.inverse_every = 20, c.kl_clip = 1e-3;
  if (kind == KVI_OPT_KFAC || kind == KVI_OPT_NOISY_KFAC || kind == KVI_OPT_LIE_NGD) c.lr = 1e-2;
  c.cg_max = 250, c.dense_max = 2000, c.lbfgs_memory = 10;
  c.prox_steps = 5, c.prox_fsd = 1, c.prox_wsd = 1e-4;
  if (kind == KVI_OPT_LBFGS || kind == KVI_OPT_NEWTON || kind == KVI_OPT_LM || kind == KVI_OPT_HF)
    c.lr = 1; /* not used: line searches and damping choose their steps */
  if (kind == KVI_OPT_PROXIMAL) c.lr = 1e-3; /* its inner Adam steps */
  return c;
}

kvi_status kvi_opt_parse(kvi_opt_kind *k, const char *s) {
  for (int i = 0; s && i < KVI__NOPTS; i++)
    if (strcmp(s, kvi__opts[i].name) == 0) {
      *k = kvi__opts[i].kind;
      return KVI_OK;
    }
  return kvi_fail(KVI_ERR_ARG,
                  "unknown optimizer '%s' (expected adam, sgd, kfac, noisy-kfac, lbfgs, newton, "
                  "lm, hf, proximal, riemann-sgd, riemann-momentum, riemann-adam or lie-ngd)",
                  s ? s : "(null)");
}

const char *kvi_opt_name(kvi_opt_kind k) {
  for (int i = 0; i < KVI__NOPTS; i++)
    if (kvi__opts[i].kind == k) return kvi__opts[i].name;
  return "adam";
}

const kvi_optimizer_ops *kvi_opt_ops(kvi_opt_kind k) {
  for (int i = 0; i < KVI__NOPTS; i++)
    if (kvi__opts[i].kind == k) return kvi__opts[i].ops;
  return NULL;
}

int kvi_opt_is_solver(kvi_opt_kind k) {
  const kvi_optimizer_ops *ops = kvi_opt_ops(k);
  return ops && ops->solve != NULL;
}

kvi_status kvi_optimizer_solve(kvi_optimizer *o, kvi_params *p, double lr, kvi_objective *f) {
  if (!o || !o->ops || !p || !f || !f->eval)
    return kvi_fail(KVI_ERR_ARG, "optimizer_solve: NULL argument or uninitialized optimizer");
  if (!o->ops->solve)
    return kvi_fail(KVI_ERR_ARG, "optimizer '%s' is not a solver (it takes gradient steps)",
                    o->ops->name);
  if (f->x != p->data || f->n != p->n || p->n != o->n)
    return kvi_fail(KVI_ERR_ARG, "optimizer_solve: the objective's point is not the block");
  o->t++;
  return o->ops->solve(o, p, lr, f);
}

kvi_status kvi_optimizer_init(kvi_optimizer *o, const kvi_opt_config *cfg, const kvi_params *p) {
  if (!o || !cfg || !p) return kvi_fail(KVI_ERR_ARG, "optimizer_init: NULL argument");
  memset(o, 0, sizeof *o);
  if (!(cfg->lr > 0)) return kvi_fail(KVI_ERR_ARG, "learning rate %g must be positive", cfg->lr);
  if (!(o->ops = kvi_opt_ops(cfg->kind)))
    return kvi_fail(KVI_ERR_ARG, "unknown optimizer kind %d", (int)cfg->kind);
  o->cfg = *cfg;
  o->n = p->n;
  kvi_status s = o->ops->init(o, p);
  if (s) kvi_optimizer_free(o);
  return s;
}

void kvi_optimizer_free(kvi_optimizer *o) {
  if (!o) return;
  if (o->impl_free) o->impl_free(o->impl);
  for (int i = 0; i < o->nbuffer; i++) kvi_free(o->buffer[i]);
  for (int i = 0; i < o->nstate; i++)
    if (o->state[i].view < 0) kvi_free(o->state[i].data);
  free(o->state);
  memset(o, 0, sizeof *o);
}

/* What a step needs: an optimizer made for this block, one that steps (not a solver). */
static kvi_status kvi__step_check(const kvi_optimizer *o, const kvi_params *p) {
  if (!o || !o->ops || !p || !p->data || !p->grad)
    return kvi_fail(KVI_ERR_ARG, "optimizer_step: NULL argument or uninitialized optimizer");
  if (p->n != o->n)
    return kvi_fail(KVI_ERR_ARG, "optimizer_step: %zu parameters, but the optimizer has %zu", p->n,
                    o->n);
  if (!o->ops->step)
    return kvi_fail(KVI_ERR_ARG, "optimizer '%s' is a solver: it steps by kvi_optimizer_solve",
                    o->ops->name);
  return KVI_OK;
}

kvi_status kvi_optimizer_step(kvi_optimizer *o, kvi_params *p, double lr) {
  kvi_status s = kvi__step_check(o, p);
  if (s) return s;
  o->t++;
  return o->ops->step(o, p, lr);
}

kvi_status kvi_optimizer_bind(kvi_optimizer *o, const kvi_params *p, kvi_dense *const *w, int nw) {
  if (!o || !o->ops || !p) return kvi_fail(KVI_ERR_ARG, "optimizer_bind: NULL argument");
  return o->ops->bind ? o->ops->bind(o, p, w, nw) : KVI_OK;
}

kvi_opt_state *kvi_optimizer_find_state(kvi_optimizer *o, const char *name) {
  for (int i = 0; o && i < o->nstate; i++)
    if (!strcmp(o->state[i].name, name)) return &o->state[i];
  return NULL;
}

void kvi_optimizer_reset(kvi_optimizer *o) {
  for (int i = 0; i < o->nbuffer; i++) memset(o->buffer[i], 0, o->n * sizeof(kvi_real));
  for (int i = 0; i < o->nstate; i++)
    if (o->state[i].view < 0) memset(o->state[i].data, 0, o->state[i].size * sizeof(kvi_real));
  o->t = 0;
}

static kvi_opt_state *kvi__new_state(kvi_optimizer *o, const char *name) {
  if (strlen(name) >= sizeof o->state[0].name) {
    kvi_fail(KVI_ERR_ARG, "optimizer state name '%s' too long", name);
    return NULL;
  }
  if (kvi_optimizer_find_state(o, name)) {
    kvi_fail(KVI_ERR_ARG, "duplicate optimizer state '%s'", name);
    return NULL;
  }
  kvi_opt_state *st = realloc(o->state, (size_t)(o->nstate + 1) * sizeof *st);
  if (!st) {
    kvi_fail(KVI_ERR_NOMEM, "out of memory for optimizer state '%s'", name);
    return NULL;
  }
  o->state = st;
  st = &o->state[o->nstate++];
  memset(st, 0, sizeof *st);
  snprintf(st->name, sizeof st->name, "%s", name);
  st->view = -1;
  return st;
}

kvi_status kvi_optimizer_add_buffer(kvi_optimizer *o, const kvi_params *p, const char *prefix,
                                    kvi_real **buf) {
  if (o->nbuffer == 4) return kvi_fail(KVI_ERR_ARG, "an optimizer has at most 4 buffers");
  kvi_real *b = kvi_alloc((p->n ? p->n : 1) * sizeof(kvi_real));
  if (!b)
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for optimizer state (%zu parameters)", p->n);
  o->buffer[o->nbuffer++] = b;
  for (int i = 0; i < p->nviews; i++) {
    const kvi_view *v = &p->views[i];
    char name[160];
    snprintf(name, sizeof name, "%s.%s", prefix, v->name);
    kvi_opt_state *st = kvi__new_state(o, name);
    if (!st) return KVI_ERR_ARG;
    st->ndim = v->ndim;
    memcpy(st->shape, v->shape, sizeof st->shape);
    st->size = v->size;
    st->data = b + v->offset;
    st->view = i;
  }
  *buf = b;
  return KVI_OK;
}

kvi_status kvi_optimizer_add_state(kvi_optimizer *o, const char *name, int ndim,
                                   const int64_t *shape, kvi_real **data) {
  if (ndim < 0 || ndim > KVI_MAX_DIMS)
    return kvi_fail(KVI_ERR_ARG, "state '%s': ndim %d", name, ndim);
  size_t size = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] <= 0) return kvi_fail(KVI_ERR_ARG, "state '%s': bad shape", name);
    size *= (size_t)shape[d];
  }
  kvi_opt_state *st = kvi__new_state(o, name);
  if (!st) return KVI_ERR_ARG;
  if (!(st->data = kvi_alloc(size * sizeof(kvi_real)))) {
    o->nstate--;
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for optimizer state '%s'", name);
  }
  st->ndim = ndim;
  for (int d = 0; d < ndim; d++) st->shape[d] = shape[d];
  st->size = size;
  if (data) *data = st->data;
  return KVI_OK;
}

/* ---- the chunked walk ------------------------------------------------------------------- */
#ifndef KVI__OPT_CHUNK
#define KVI__OPT_CHUNK 16384
#endif

typedef struct {
  size_t chunk; /* running chunk number */
  int tid, nt;
  kvi_opt_run_fn fn;
  void *ctx;
  const kvi_ard_block *skip; /* views these blocks cover are not walked */
  int nskip;
} kvi__walk;

static bool kvi__skipped(const kvi__walk *wk, const kvi_view *w) {
  for (int i = 0; i < wk->nskip; i++) {
    const kvi_ard_block *b = &wk->skip[i];
    if (w->offset == b->mu) return true;
    if (b->rows > 0 ? w->offset == b->A || w->offset == b->B : w->offset == b->log_sigma)
      return true;
  }
  return false;
}

static void kvi__run(kvi__walk *wk, size_t off, size_t len, kvi_role role) {
  for (size_t c0 = 0; c0 < len; c0 += KVI__OPT_CHUNK, wk->chunk++) {
    if (wk->chunk % (size_t)wk->nt != (size_t)wk->tid) continue;
    wk->fn(wk->ctx, off + c0, len - c0 < KVI__OPT_CHUNK ? len - c0 : KVI__OPT_CHUNK, role);
  }
}

static void kvi__walk_views(kvi__walk *wk, const kvi_params *p) {
  for (int vi = 0; vi < p->nviews; vi++) {
    const kvi_view *w = &p->views[vi];
    if (kvi__skipped(wk, w)) continue;
    int64_t r = w->shape[0];
    bool tri =
        w->role == KVI_ROLE_CHOL && w->ndim == 2 && w->shape[1] == r && (size_t)(r * r) == w->size;
    if (!tri) {
      kvi__run(wk, w->offset, w->size, w->role);
      continue;
    }
    /* the rows' triangles, consecutive rows grouped into chunks of about KVI__OPT_CHUNK
     * elements, so that each thread walks contiguous blocks of rows */
    size_t acc = 0;
    for (int64_t i = 0; i < r; i++) {
      if (wk->chunk % (size_t)wk->nt == (size_t)wk->tid)
        wk->fn(wk->ctx, w->offset + (size_t)(i * r), (size_t)i + 1, w->role);
      acc += (size_t)i + 1;
      if (acc >= KVI__OPT_CHUNK) wk->chunk++, acc = 0;
    }
    if (acc) wk->chunk++;
  }
}

void kvi__optimizer_walk_except(const kvi_params *p, kvi_opt_run_fn fn, void *ctx,
                                const kvi_ard_block *b, int nb) {
#pragma omp parallel if (p->n >= KVI__OPT_PAR_MIN)
  {
    kvi__walk wk = {0, omp_get_thread_num(), omp_get_num_threads(), fn, ctx, b, nb};
    kvi__walk_views(&wk, p);
  }
}

void kvi_optimizer_walk(const kvi_params *p, kvi_opt_run_fn fn, void *ctx) {
  kvi__optimizer_walk_except(p, fn, ctx, NULL, 0);
}

kvi_role kvi__optimizer_view_role(const kvi_params *p, size_t offset) {
  for (int vi = 0; vi < p->nviews; vi++)
    if (p->views[vi].offset == offset) return p->views[vi].role;
  return KVI_ROLE_OTHER;
}

/* The view starting at element offset off has exactly `size` elements. */
static bool kvi__view_is(const kvi_params *p, size_t off, size_t size) {
  for (int vi = 0; vi < p->nviews; vi++)
    if (p->views[vi].offset == off) return p->views[vi].size == size;
  return false;
}

/* A DIAG block must be two whole views of n elements each; an MN block M (rows, cols) and its
 * factors (rows, rows), (cols, cols). */
static kvi_status kvi__ard_check(const kvi_params *p, const kvi_ard_block *b) {
  if (b->rows > 0 || b->cols > 0) {
    const size_t r = (size_t)b->rows, c = (size_t)b->cols;
    if (b->rows > 0 && b->cols > 0 && b->kl && kvi__view_is(p, b->mu, r * c) &&
        kvi__view_is(p, b->A, r * r) && kvi__view_is(p, b->B, c * c) && b->mu != b->A &&
        b->mu != b->B && b->A != b->B)
      return KVI_OK;
    return kvi_fail(KVI_ERR_ARG,
                    "optimizer_step_ard: MN block (M %zu, A %zu, B %zu, %d x %d) is not a weight "
                    "matrix and its two factors' parameter views with a KL output",
                    b->mu, b->A, b->B, b->rows, b->cols);
  }
  int found = 0;
  for (int vi = 0; vi < p->nviews; vi++) {
    const kvi_view *w = &p->views[vi];
    if ((w->offset == b->mu || w->offset == b->log_sigma) && w->size == b->n) found++;
  }
  if (found != 2 || b->mu == b->log_sigma || !b->kl || b->n > INT_MAX)
    return kvi_fail(KVI_ERR_ARG,
                    "optimizer_step_ard: block (mu %zu, log_sigma %zu, n %zu) is not two "
                    "parameter views of n elements with a KL output",
                    b->mu, b->log_sigma, b->n);
  return KVI_OK;
}

kvi_status kvi_optimizer_step_ard(kvi_optimizer *o, kvi_params *p, double lr,
                                  const kvi_ard_block *b, int nb) {
  if (nb < 0 || (nb > 0 && !b))
    return kvi_fail(KVI_ERR_ARG, "optimizer_step_ard: %d blocks at %p", nb, (const void *)b);
  kvi_status s0 = kvi__step_check(o, p);
  if (s0) return s0;
  for (int i = 0; i < nb; i++) {
    kvi_status s = kvi__ard_check(p, &b[i]);
    if (s) return s;
  }
  if (!o->ops->step_ard) {
    for (int i = 0; i < nb; i++) { /* the KL gradients first, then the plain step */
      kvi_status s;
      if (b[i].rows > 0) {
        kvi_mn q = {b[i].rows, b[i].cols, p->data + b[i].mu, p->data + b[i].A, p->data + b[i].B};
        kvi_mn_grad g = {p->grad + b[i].mu, p->grad + b[i].A, p->grad + b[i].B};
        s = kvi_mn_kl_ard(b[i].kl, &q, &g, b[i].gscale);
      } else {
        kvi_diag q = {1, (int)b[i].n, p->data + b[i].mu, p->data + b[i].log_sigma};
        kvi_diag_grad g = {p->grad + b[i].mu, p->grad + b[i].log_sigma};
        s = kvi_diag_kl_ard(b[i].kl, &q, &g, b[i].gscale);
      }
      if (s) return s;
    }
    return kvi_optimizer_step(o, p, lr);
  }
  o->t++;
  kvi_status s = o->ops->step_ard(o, p, lr, b, nb);
  if (s) o->t--; /* nothing was updated */
  return s;
}
