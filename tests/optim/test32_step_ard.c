/* kvi_optimizer_step_ard against its definition: adding each ARD block's KL gradient with
 * kvi_diag_kl_ard (DIAG blocks) or kvi_mn_kl_ard (MN blocks) and then calling kvi_optimizer_step
 * must give the same bits (parameters, gradients, optimizer state, KL values) as the fused pass,
 * for Adam (fused, with weight decay on the means) and SGD (the plain fallback), on one and two
 * threads, with MN blocks large enough for the parallel passes and one outside the fused pass's
 * range; bad blocks fail with a message and change nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/optim.h"
#include "kronvi/prob.h"
#include "kvi_test.h"

/* Two DIAG blocks (37 x 29: a whole span of 1024 and a partial one; 3 x 4), a bias and a
 * Cholesky factor, which the fused pass must leave to the ordinary walk. */
enum { V_MU, V_LS, V_B, V_A, V_MU2, V_LS2, NV };

static void build(kvi_params *p) {
  kvi_params_init(p);
  int idx;
  int64_t s1[2] = {37, 29}, sb[1] = {5}, sA[2] = {3, 3}, s2[2] = {3, 4};
  CHECK_OK(kvi_params_add(p, "l.mu", KVI_ROLE_MEAN, 2, s1, &idx));
  CHECK_OK(kvi_params_add(p, "l.log_sigma", KVI_ROLE_LOG_SIGMA, 2, s1, &idx));
  CHECK_OK(kvi_params_add(p, "l.b", KVI_ROLE_BIAS, 1, sb, &idx));
  CHECK_OK(kvi_params_add(p, "l.A", KVI_ROLE_CHOL, 2, sA, &idx));
  CHECK_OK(kvi_params_add(p, "k.mu", KVI_ROLE_MEAN, 2, s2, &idx));
  CHECK_OK(kvi_params_add(p, "k.log_sigma", KVI_ROLE_LOG_SIGMA, 2, s2, &idx));
  CHECK_OK(kvi_params_alloc(p));
  for (size_t i = 0; i < p->n; i++) p->data[i] = (kvi_real)(0.4 * sin(0.37 * (double)i) - 0.1);
  const kvi_view *A = &p->views[V_A];
  for (int r = 0; r < 3; r++) /* the strict upper triangle stays zero */
    for (int c = r + 1; c < 3; c++) p->data[A->offset + (size_t)r * 3 + c] = 0;
  for (int v = V_LS; v < NV; v += 4) /* log sigma around -3 */
    for (size_t k = 0; k < p->views[v].size; k++) p->data[p->views[v].offset + k] -= 3;
}

static void set_grad(kvi_params *p, int step) {
  const kvi_view *A = &p->views[V_A];
  for (size_t i = 0; i < p->n; i++) {
    size_t k = i - A->offset;
    bool upper = i >= A->offset && k < A->size && k % 3 > k / 3;
    p->grad[i] = upper ? 0 : (kvi_real)(0.2 * cos(1.3 * (double)i + step) + 0.01 * step);
  }
}

static void blocks(kvi_ard_block *b, const kvi_params *p, double *kl, kvi_real gscale) {
  b[0] = (kvi_ard_block){.mu = p->views[V_MU].offset,
                         .log_sigma = p->views[V_LS].offset,
                         .n = p->views[V_MU].size,
                         .gscale = gscale,
                         .kl = &kl[0]};
  b[1] = (kvi_ard_block){.mu = p->views[V_MU2].offset,
                         .log_sigma = p->views[V_LS2].offset,
                         .n = p->views[V_MU2].size,
                         .gscale = gscale,
                         .kl = &kl[1]};
}

/* The definition: kvi_diag_kl_ard on each block, then the plain step. */
static void step_unfused(kvi_optimizer *o, kvi_params *p, double lr, const kvi_ard_block *b,
                         int nb) {
  for (int i = 0; i < nb; i++) {
    const kvi_view *w = &p->views[i == 0 ? V_MU : V_MU2];
    kvi_diag q = {(int)w->shape[0], (int)w->shape[1], p->data + b[i].mu, p->data + b[i].log_sigma};
    kvi_diag_grad g = {p->grad + b[i].mu, p->grad + b[i].log_sigma};
    CHECK_OK(kvi_diag_kl_ard(b[i].kl, &q, &g, b[i].gscale));
  }
  CHECK_OK(kvi_optimizer_step(o, p, lr));
}

static bool same_bits(const kvi_real *a, const kvi_real *b, size_t n) {
  return memcmp(a, b, n * sizeof *a) == 0;
}

static void check_same(kvi_opt_config c, int threads, const char *what) {
  kvi_set_threads(threads);
  const int failed = kvi_test_failures;
  kvi_params p, q;
  build(&p), build(&q);
  kvi_optimizer o1, o2;
  CHECK_OK(kvi_optimizer_init(&o1, &c, &p));
  CHECK_OK(kvi_optimizer_init(&o2, &c, &q));
  double kl1[2], kl2[2];
  kvi_ard_block b1[2], b2[2];
  blocks(b1, &p, kl1, (kvi_real)0.013), blocks(b2, &q, kl2, (kvi_real)0.013);
  for (int t = 1; t <= 3; t++) {
    set_grad(&p, t), set_grad(&q, t);
    step_unfused(&o1, &p, 0.01, b1, 2);
    CHECK_OK(kvi_optimizer_step_ard(&o2, &q, 0.01, b2, 2));
    CHECK(kl1[0] == kl2[0] && kl1[1] == kl2[1]);
    CHECK(kl1[0] > 0 && kl1[1] > 0);
  }
  CHECK(same_bits(p.data, q.data, p.n));
  CHECK(same_bits(p.grad, q.grad, p.n));
  for (int i = 0; i < o1.nbuffer; i++) CHECK(same_bits(o1.buffer[i], o2.buffer[i], p.n));
  if (kvi_test_failures > failed) fprintf(stderr, "  (in %s, %d threads)\n", what, threads);
  kvi_optimizer_free(&o1), kvi_optimizer_free(&o2);
  kvi_params_free(&p), kvi_params_free(&q);
}

/* Blocks that are not two whole views, or lack their output: an error, nothing changed. */
static void check_bad_blocks(void) {
  kvi_params p;
  build(&p);
  kvi_opt_config c = kvi_opt_config_default(KVI_OPT_ADAM);
  kvi_optimizer o;
  CHECK_OK(kvi_optimizer_init(&o, &c, &p));
  set_grad(&p, 1);
  kvi_real *before = malloc(p.n * sizeof *before);
  memcpy(before, p.data, p.n * sizeof *before);
  double kl[2];
  kvi_ard_block b[2];
  blocks(b, &p, kl, 1);
  b[0].n -= 1; /* not the whole view */
  CHECK_FAILS(kvi_optimizer_step_ard(&o, &p, 0.01, b, 2));
  blocks(b, &p, kl, 1);
  b[1].log_sigma = b[1].mu;
  CHECK_FAILS(kvi_optimizer_step_ard(&o, &p, 0.01, b, 2));
  blocks(b, &p, kl, 1);
  b[0].kl = NULL;
  CHECK_FAILS(kvi_optimizer_step_ard(&o, &p, 0.01, b, 2));
  blocks(b, &p, kl, 1);
  b[0].mu = p.views[V_B].offset; /* a bias is not a block's view */
  CHECK_FAILS(kvi_optimizer_step_ard(&o, &p, 0.01, b, 2));
  CHECK_FAILS(kvi_optimizer_step_ard(&o, &p, 0.01, NULL, 1));
  CHECK_FAILS(kvi_optimizer_step_ard(NULL, &p, 0.01, b, 0));
  CHECK(same_bits(before, p.data, p.n));
  CHECK(o.t == 0);
  /* no blocks: the plain step */
  CHECK_OK(kvi_optimizer_step_ard(&o, &p, 0.01, NULL, 0));
  CHECK(o.t == 1);
  free(before);
  kvi_optimizer_free(&o);
  kvi_params_free(&p);
}

/* ---- MN blocks ------------------------------------------------------------------------------
 * A 300 x 220 block (parallel row blocks and factor rows), a bias, a 7 x 5 block (its A's
 * log-diagonal at 30 when `wide`: U_ii beyond the fused pass's range) and a DIAG block. */
enum { W_M1, W_A1, W_B1, W_BIAS, W_M2, W_A2, W_B2, W_MU3, W_LS3, NW };

static void build_mn(kvi_params *p, bool wide) {
  kvi_params_init(p);
  int idx;
  const char *name[NW] = {"a.M", "a.A", "a.B", "a.b", "c.M", "c.A", "c.B", "d.mu", "d.log_sigma"};
  const kvi_role role[NW] = {KVI_ROLE_MEAN, KVI_ROLE_CHOL, KVI_ROLE_CHOL,
                             KVI_ROLE_BIAS, KVI_ROLE_MEAN, KVI_ROLE_CHOL,
                             KVI_ROLE_CHOL, KVI_ROLE_MEAN, KVI_ROLE_LOG_SIGMA};
  const int64_t shape[NW][2] = {{300, 220}, {300, 300}, {220, 220}, {220, 1}, {7, 5},
                                {7, 7},     {5, 5},     {6, 9},     {6, 9}};
  for (int v = 0; v < NW; v++)
    CHECK_OK(kvi_params_add(p, name[v], role[v], v == W_BIAS ? 1 : 2, shape[v], &idx));
  CHECK_OK(kvi_params_alloc(p));
  for (size_t i = 0; i < p->n; i++) p->data[i] = (kvi_real)(0.4 * sin(0.37 * (double)i) - 0.1);
  for (int v = 0; v < NW; v++) {
    const kvi_view *w = &p->views[v];
    const int64_t r = w->shape[0];
    if (w->role == KVI_ROLE_CHOL) /* small strict lower part, log-diagonal near -1 */
      for (int64_t i = 0; i < r; i++)
        for (int64_t k = 0; k < r; k++) {
          kvi_real *x = p->data + w->offset + (size_t)(i * r + k);
          *x = k > i ? 0 : k == i ? *x - 1 : *x / 8;
        }
  }
  if (wide)
    for (int i = 0; i < 7; i++) p->data[p->views[W_A2].offset + (size_t)i * 8] = 30;
  for (size_t k = 0; k < p->views[W_LS3].size; k++) p->data[p->views[W_LS3].offset + k] -= 3;
}

/* Gradients with the factors' strict upper triangles zero, as the layers leave them. */
static void set_grad_mn(kvi_params *p, int step) {
  for (size_t i = 0; i < p->n; i++) p->grad[i] = (kvi_real)(0.2 * cos(1.3 * (double)i + step));
  for (int v = 0; v < NW; v++) {
    const kvi_view *w = &p->views[v];
    const int64_t r = w->shape[0];
    if (w->role == KVI_ROLE_CHOL)
      for (int64_t i = 0; i < r; i++)
        for (int64_t k = i + 1; k < r; k++) p->grad[w->offset + (size_t)(i * r + k)] = 0;
  }
}

static kvi_ard_block mn_block(const kvi_params *p, int M, double *kl, kvi_real gscale) {
  const kvi_view *w = &p->views[M];
  return (kvi_ard_block){.mu = w->offset,
                         .gscale = gscale,
                         .kl = kl,
                         .rows = (int)w->shape[0],
                         .cols = (int)w->shape[1],
                         .A = p->views[M + 1].offset,
                         .B = p->views[M + 2].offset};
}

static void blocks_mn(kvi_ard_block *b, const kvi_params *p, double *kl, kvi_real gscale) {
  b[0] = mn_block(p, W_M1, &kl[0], gscale);
  b[1] = mn_block(p, W_M2, &kl[1], gscale);
  b[2] = (kvi_ard_block){.mu = p->views[W_MU3].offset,
                         .log_sigma = p->views[W_LS3].offset,
                         .n = p->views[W_MU3].size,
                         .gscale = gscale,
                         .kl = &kl[2]};
}

static void step_unfused_mn(kvi_optimizer *o, kvi_params *p, double lr, const kvi_ard_block *b) {
  for (int i = 0; i < 2; i++) {
    kvi_mn q = {b[i].rows, b[i].cols, p->data + b[i].mu, p->data + b[i].A, p->data + b[i].B};
    kvi_mn_grad g = {p->grad + b[i].mu, p->grad + b[i].A, p->grad + b[i].B};
    CHECK_OK(kvi_mn_kl_ard(b[i].kl, &q, &g, b[i].gscale));
  }
  kvi_diag q = {6, 9, p->data + b[2].mu, p->data + b[2].log_sigma};
  kvi_diag_grad g = {p->grad + b[2].mu, p->grad + b[2].log_sigma};
  CHECK_OK(kvi_diag_kl_ard(b[2].kl, &q, &g, b[2].gscale));
  CHECK_OK(kvi_optimizer_step(o, p, lr));
}

static void check_same_mn(kvi_opt_config c, int threads, bool wide, const char *what) {
  kvi_set_threads(threads);
  const int failed = kvi_test_failures;
  kvi_params p, q;
  build_mn(&p, wide), build_mn(&q, wide);
  kvi_optimizer o1, o2;
  CHECK_OK(kvi_optimizer_init(&o1, &c, &p));
  CHECK_OK(kvi_optimizer_init(&o2, &c, &q));
  double kl1[3], kl2[3];
  kvi_ard_block b1[3], b2[3];
  blocks_mn(b1, &p, kl1, (kvi_real)0.013), blocks_mn(b2, &q, kl2, (kvi_real)0.013);
  for (int t = 1; t <= 3; t++) {
    set_grad_mn(&p, t), set_grad_mn(&q, t);
    step_unfused_mn(&o1, &p, 0.01, b1);
    CHECK_OK(kvi_optimizer_step_ard(&o2, &q, 0.01, b2, 3));
    for (int i = 0; i < 3; i++) CHECK(kl1[i] == kl2[i] && isfinite(kl1[i]) && kl1[i] != 0);
  }
  CHECK(same_bits(p.data, q.data, p.n));
  CHECK(same_bits(p.grad, q.grad, p.n));
  for (int i = 0; i < o1.nbuffer; i++) CHECK(same_bits(o1.buffer[i], o2.buffer[i], p.n));
  /* the factors' upper triangles are never written */
  const kvi_view *A = &q.views[W_A1];
  CHECK(q.data[A->offset + 1] == 0 && o2.buffer[0][A->offset + 1] == 0);
  if (kvi_test_failures > failed)
    fprintf(stderr, "  (in %s, MN blocks%s, %d threads)\n", what, wide ? ", one wide" : "",
            threads);
  kvi_optimizer_free(&o1), kvi_optimizer_free(&o2);
  kvi_params_free(&p), kvi_params_free(&q);
}

/* MN blocks whose views do not match their shape, overlap, or lack their output; and a block
 * with a non-finite KL: an error, no parameter changed. */
static void check_bad_mn_blocks(void) {
  kvi_params p;
  build_mn(&p, false);
  kvi_opt_config c = kvi_opt_config_default(KVI_OPT_ADAM);
  kvi_optimizer o;
  CHECK_OK(kvi_optimizer_init(&o, &c, &p));
  set_grad_mn(&p, 1);
  kvi_real *before = malloc(p.n * sizeof *before), *gbefore = malloc(p.n * sizeof *gbefore);
  memcpy(before, p.data, p.n * sizeof *before);
  memcpy(gbefore, p.grad, p.n * sizeof *gbefore);
  double kl[3];
  kvi_ard_block b[3];
  blocks_mn(b, &p, kl, 1);
  b[0].rows = 299; /* M's shape does not match the view */
  CHECK_FAILS(kvi_optimizer_step_ard(&o, &p, 0.01, b, 3));
  blocks_mn(b, &p, kl, 1);
  b[1].B = b[1].A;
  CHECK_FAILS(kvi_optimizer_step_ard(&o, &p, 0.01, b, 3));
  blocks_mn(b, &p, kl, 1);
  b[1].A = p.views[W_BIAS].offset;
  CHECK_FAILS(kvi_optimizer_step_ard(&o, &p, 0.01, b, 3));
  blocks_mn(b, &p, kl, 1);
  b[0].kl = NULL;
  CHECK_FAILS(kvi_optimizer_step_ard(&o, &p, 0.01, b, 3));
  blocks_mn(b, &p, kl, 1);
  b[1].cols = -5;
  CHECK_FAILS(kvi_optimizer_step_ard(&o, &p, 0.01, b, 3));
  /* a NaN in the second block's M: its KL is not finite; the first block was begun, not run */
  blocks_mn(b, &p, kl, 1);
  p.data[p.views[W_M2].offset + 3] = NAN;
  before[p.views[W_M2].offset + 3] = NAN;
  CHECK_FAILS(kvi_optimizer_step_ard(&o, &p, 0.01, b, 3));
  CHECK(strstr(kvi_last_error(), "not finite") != NULL);
  CHECK(memcmp(before, p.data, p.n * sizeof *before) == 0); /* bits: the NaN included */
  CHECK(same_bits(gbefore, p.grad, p.n));
  CHECK(o.t == 0);
  free(before), free(gbefore);
  kvi_optimizer_free(&o);
  kvi_params_free(&p);
}

int main(void) {
  kvi_opt_config adam = kvi_opt_config_default(KVI_OPT_ADAM);
  adam.weight_decay = 0.1;
  kvi_opt_config sgd = kvi_opt_config_default(KVI_OPT_SGD);
  sgd.momentum = 0.9;
  for (int th = 1; th <= 2; th++) {
    check_same(kvi_opt_config_default(KVI_OPT_ADAM), th, "adam");
    check_same(adam, th, "adam, weight decay 0.1");
    check_same(sgd, th, "sgd (the unfused fallback)");
    for (int wide = 0; wide <= 1; wide++) {
      check_same_mn(kvi_opt_config_default(KVI_OPT_ADAM), th, wide, "adam");
      check_same_mn(adam, th, wide, "adam, weight decay 0.1");
      check_same_mn(sgd, th, wide, "sgd (the unfused fallback)");
    }
  }
  check_bad_blocks();
  check_bad_mn_blocks();
  TEST_MAIN_END();
}
