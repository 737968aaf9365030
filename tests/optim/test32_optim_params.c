/* The optimizers in single precision (the training path) over a parameter set with mean,
 * Cholesky (square, role KVI_ROLE_CHOL, upper triangles zero with zero gradient), bias and prior
 * views: the strict upper triangles stay exactly zero, a large set (over a million parameters,
 * the parallel path) gives bit-identical parameters and state with 1 and 2 threads, and weight
 * decay leaves every view but the means untouched when the gradient is zero. */
#include <string.h>

#include "kronvi/optim.h"
#include "kvi_test.h"

static void build(kvi_params *p, int big) {
  kvi_params_init(p);
  int idx;
  int64_t n = big ? 700 : 7, m = big ? 500 : 5;
  int64_t sM[2] = {n, m}, sA[2] = {n, n}, sB[2] = {m, m}, sb[2] = {m, 0}, sl[2] = {1, 0};
  CHECK_OK(kvi_params_add(p, "l.M", KVI_ROLE_MEAN, 2, sM, &idx));
  CHECK_OK(kvi_params_add(p, "l.A", KVI_ROLE_CHOL, 2, sA, &idx));
  CHECK_OK(kvi_params_add(p, "l.B", KVI_ROLE_CHOL, 2, sB, &idx));
  CHECK_OK(kvi_params_add(p, "l.b", KVI_ROLE_BIAS, 1, sb, &idx));
  CHECK_OK(kvi_params_add(p, "l.lv", KVI_ROLE_PRIOR, 1, sl, &idx));
  CHECK_OK(kvi_params_add(p, "k.A", KVI_ROLE_CHOL, 2, sA, &idx));
  CHECK_OK(kvi_params_alloc(p));
}

/* random data or gradients; zero on the strict upper triangles of the Cholesky views */
static void fill(kvi_params *p, kvi_real *x, kvi_rng *r) {
  kvi_rng_normal(r, x, p->n);
  for (int v = 0; v < p->nviews; v++) {
    const kvi_view *w = &p->views[v];
    if (w->role != KVI_ROLE_CHOL) continue;
    int64_t n = w->shape[0];
    for (int64_t i = 0; i < n; i++)
      for (int64_t k = i + 1; k < n; k++) x[w->offset + (size_t)(i * n + k)] = 0;
  }
}

static bool upper_zero(const kvi_params *p) {
  bool ok = true;
  for (int v = 0; v < p->nviews; v++) {
    const kvi_view *w = &p->views[v];
    if (w->role != KVI_ROLE_CHOL) continue;
    int64_t n = w->shape[0];
    for (int64_t i = 0; i < n; i++)
      for (int64_t k = i + 1; k < n; k++) ok &= p->data[w->offset + (size_t)(i * n + k)] == 0;
  }
  return ok;
}

/* Five steps with `threads` threads; returns the optimizer (caller frees). */
static void train(kvi_params *p, kvi_optimizer *o, kvi_opt_kind kind, double wd, int big,
                  int threads) {
  kvi_set_threads(threads);
  build(p, big);
  kvi_rng r = kvi_rng_stream(5, 6);
  fill(p, p->data, &r);
  kvi_opt_config c = kvi_opt_config_default(kind);
  c.weight_decay = wd;
  CHECK_OK(kvi_optimizer_init(o, &c, p));
  for (int step = 0; step < 5; step++) {
    kvi_rng rg = kvi_rng_stream(9, (uint64_t)step);
    fill(p, p->grad, &rg);
    CHECK_OK(kvi_optimizer_step(o, p, 1e-2));
  }
}

static void run(kvi_opt_kind kind, double wd, int big) {
  kvi_params p1, p2;
  kvi_optimizer o1, o2;
  train(&p1, &o1, kind, wd, big, 1);
  train(&p2, &o2, kind, wd, big, 2);
  CHECK(memcmp(p1.data, p2.data, p1.n * sizeof *p1.data) == 0);
  for (int i = 0; i < o1.nstate; i++)
    CHECK(memcmp(o1.state[i].data, o2.state[i].data, o1.state[i].size * sizeof(kvi_real)) == 0);
  CHECK(upper_zero(&p1) && upper_zero(&p2));
  kvi_optimizer_free(&o1), kvi_optimizer_free(&o2);
  kvi_params_free(&p1), kvi_params_free(&p2);
}

/* With a zero gradient only weight decay moves x: the means shrink, nothing else changes. */
static void decay_only_means(kvi_opt_kind kind) {
  kvi_params p;
  build(&p, 0);
  kvi_rng r = kvi_rng_stream(1, 2);
  fill(&p, p.data, &r);
  kvi_real *before = kvi_alloc(p.n * sizeof *before);
  memcpy(before, p.data, p.n * sizeof *before);
  kvi_opt_config c = kvi_opt_config_default(kind);
  c.weight_decay = 0.5;
  kvi_optimizer o;
  CHECK_OK(kvi_optimizer_init(&o, &c, &p));
  CHECK_OK(kvi_optimizer_step(&o, &p, 0.1));
  for (int v = 0; v < p.nviews; v++) {
    const kvi_view *w = &p.views[v];
    bool same = memcmp(p.data + w->offset, before + w->offset, w->size * sizeof *before) == 0;
    CHECK(w->role == KVI_ROLE_MEAN ? !same : same);
    if (w->role == KVI_ROLE_MEAN) CHECK_NEAR(p.data[w->offset], 0.95 * before[w->offset], 1e-6);
  }
  kvi_free(before);
  kvi_optimizer_free(&o);
  kvi_params_free(&p);
}

int main(void) {
  for (int big = 0; big < 2; big++) {
    run(KVI_OPT_ADAM, 0, big);
    run(KVI_OPT_ADAM, 1e-2, big);
    run(KVI_OPT_SGD, 1e-2, big);
  }
  decay_only_means(KVI_OPT_ADAM);
  decay_only_means(KVI_OPT_SGD);
  TEST_MAIN_END();
}
