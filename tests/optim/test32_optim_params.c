/* kvi_optimizer_step_params (single precision, the training path) against kvi_optimizer_step on
 * the whole buffer: Adam and SGD (with weight decay), a parameter set with mean, Cholesky (square,
 * role KVI_ROLE_CHOL, upper triangles zero with zero gradient), bias and prior views. The results
 * must be bit-identical, the strict upper triangles must stay exactly zero, and a size mismatch
 * or NULL must fail with a message. A large set (over a million parameters) takes the parallel
 * path of kvi_optimizer_step_params, run with 1 and 2 threads: still bit-identical. */
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

/* random data and gradients; zero on the strict upper triangles of the Cholesky views */
static void fill(kvi_params *p, kvi_rng *r) {
  kvi_rng_normal(r, p->data, p->n);
  kvi_rng_normal(r, p->grad, p->n);
  for (int v = 0; v < p->nviews; v++) {
    const kvi_view *w = &p->views[v];
    if (w->role != KVI_ROLE_CHOL) continue;
    int64_t n = w->shape[0];
    for (int64_t i = 0; i < n; i++)
      for (int64_t k = i + 1; k < n; k++) {
        p->data[w->offset + (size_t)(i * n + k)] = 0;
        p->grad[w->offset + (size_t)(i * n + k)] = 0;
      }
  }
}

static void run(kvi_opt_kind kind, double wd, int big, int threads) {
  kvi_set_threads(threads);
  kvi_params p1, p2;
  build(&p1, big);
  build(&p2, big);
  kvi_rng r = kvi_rng_stream(5, 6);
  fill(&p1, &r);
  memcpy(p2.data, p1.data, p1.n * sizeof *p1.data);
  kvi_opt_config c = kvi_opt_config_default(kind);
  c.weight_decay = wd;
  kvi_optimizer o1, o2;
  CHECK_OK(kvi_optimizer_init(&o1, &c, p1.n));
  CHECK_OK(kvi_optimizer_init(&o2, &c, p2.n));
  memset(o1.m, 0, p1.n * sizeof *o1.m);
  memset(o2.m, 0, p2.n * sizeof *o2.m);
  if (o1.v) memset(o1.v, 0, p1.n * sizeof *o1.v), memset(o2.v, 0, p2.n * sizeof *o2.v);
  for (int step = 0; step < 5; step++) {
    kvi_rng rg = kvi_rng_stream(9, (uint64_t)step);
    kvi_params tmp;
    build(&tmp, big);
    fill(&tmp, &rg);
    memcpy(p1.grad, tmp.grad, p1.n * sizeof *p1.grad);
    memcpy(p2.grad, tmp.grad, p2.n * sizeof *p2.grad);
    kvi_params_free(&tmp);
    CHECK_OK(kvi_optimizer_step(&o1, p1.data, p1.grad, 1e-2));
    CHECK_OK(kvi_optimizer_step_params(&o2, &p2, 1e-2));
  }
  CHECK(o1.t == o2.t);
  CHECK(memcmp(p1.data, p2.data, p1.n * sizeof *p1.data) == 0);
  CHECK(memcmp(o1.m, o2.m, p1.n * sizeof *o1.m) == 0);
  if (o1.v) CHECK(memcmp(o1.v, o2.v, p1.n * sizeof *o1.v) == 0);
  int upper_zero = 1;
  for (int v = 0; v < p2.nviews; v++) {
    const kvi_view *w = &p2.views[v];
    if (w->role != KVI_ROLE_CHOL) continue;
    int64_t n = w->shape[0];
    for (int64_t i = 0; i < n; i++)
      for (int64_t k = i + 1; k < n; k++)
        upper_zero &= p2.data[w->offset + (size_t)(i * n + k)] == 0;
  }
  CHECK(upper_zero);
  /* errors */
  kvi_optimizer small;
  CHECK_OK(kvi_optimizer_init(&small, &c, p2.n - 1));
  CHECK_STATUS(kvi_optimizer_step_params(&small, &p2, 1e-2), KVI_ERR_ARG);
  CHECK_FAILS(kvi_optimizer_step_params(&o2, NULL, 1e-2));
  CHECK_FAILS(kvi_optimizer_step_params(NULL, &p2, 1e-2));
  kvi_optimizer_free(&small);
  kvi_optimizer_free(&o1);
  kvi_optimizer_free(&o2);
  kvi_params_free(&p1);
  kvi_params_free(&p2);
}

int main(void) {
  for (int big = 0; big < 2; big++)
    for (int threads = 1; threads <= 2; threads++) {
      run(KVI_OPT_ADAM, 0, big, threads);
      run(KVI_OPT_ADAM, 1e-2, big, threads);
      run(KVI_OPT_SGD, 1e-2, big, threads);
    }
  TEST_MAIN_END();
}
