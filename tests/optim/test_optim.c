/* Adam and SGD (heavy ball, Nesterov) against their closed-form updates computed here in scalar
 * double arithmetic, with weight decay on the means only; the state tensors are per view, named
 * after it, of its shape, and reset; bad calls fail with a message. */
#include <string.h>

#include "kronvi/optim.h"
#include "kvi_test.h"

/* A mean (3x2), a bias (2), a Cholesky factor (2x2, upper entry zero) and a prior scalar. */
static void build(kvi_params *p) {
  kvi_params_init(p);
  int idx;
  int64_t sM[2] = {3, 2}, sb[1] = {2}, sA[2] = {2, 2}, sl[1] = {1};
  CHECK_OK(kvi_params_add(p, "l.M", KVI_ROLE_MEAN, 2, sM, &idx));
  CHECK_OK(kvi_params_add(p, "l.b", KVI_ROLE_BIAS, 1, sb, &idx));
  CHECK_OK(kvi_params_add(p, "l.A", KVI_ROLE_CHOL, 2, sA, &idx));
  CHECK_OK(kvi_params_add(p, "l.lv", KVI_ROLE_PRIOR, 1, sl, &idx));
  CHECK_OK(kvi_params_alloc(p));
}

static bool is_upper(const kvi_params *p, size_t i) {
  const kvi_view *A = &p->views[2];
  return i == A->offset + 1; /* entry (0, 1) of the 2x2 factor */
}

static void set_grad(kvi_params *p, int step) {
  for (int v = 0; v < p->nviews; v++)
    for (size_t k = 0; k < p->views[v].size; k++) {
      size_t i = p->views[v].offset + k;
      p->grad[i] = is_upper(p, i) ? 0 : (kvi_real)(0.3 * sin(1.7 * (double)i + step) + 0.05 * step);
    }
}

/* Reference updates of every view element, in double. */
static void reference(kvi_opt_config c, int steps, double lr, double *x, const kvi_params *p) {
  double m[64] = {0}, v[64] = {0};
  kvi_params g;
  build(&g);
  for (int t = 1; t <= steps; t++) {
    set_grad(&g, t);
    for (int vi = 0; vi < p->nviews; vi++)
      for (size_t k = 0; k < p->views[vi].size; k++) {
        size_t i = p->views[vi].offset + k;
        if (is_upper(p, i)) continue;
        double gi = g.grad[i], wd = p->views[vi].role == KVI_ROLE_MEAN ? c.weight_decay : 0;
        if (c.kind == KVI_OPT_ADAM) {
          m[i] = c.beta1 * m[i] + (1 - c.beta1) * gi;
          v[i] = c.beta2 * v[i] + (1 - c.beta2) * gi * gi;
          double mh = m[i] / (1 - pow(c.beta1, t)), vh = v[i] / (1 - pow(c.beta2, t));
          x[i] = (1 - lr * wd) * x[i] - lr * mh / (sqrt(vh) + c.eps);
        } else {
          m[i] = c.momentum * m[i] + gi;
          double d = c.nesterov ? gi + c.momentum * m[i] : m[i];
          x[i] = (1 - lr * wd) * x[i] - lr * d;
        }
      }
  }
  kvi_params_free(&g);
}

static void check_against_reference(kvi_opt_config c, const char *what) {
  kvi_params p;
  build(&p);
  double x[64] = {0};
  for (size_t i = 0; i < p.n; i++) p.data[i] = x[i] = is_upper(&p, i) ? 0 : 0.1 * (double)i - 1;
  kvi_optimizer o;
  CHECK_OK(kvi_optimizer_init(&o, &c, &p));
  const double lr = 0.05;
  for (int t = 1; t <= 6; t++) {
    set_grad(&p, t);
    CHECK_OK(kvi_optimizer_step(&o, &p, lr));
  }
  reference(c, 6, lr, x, &p);
  double worst = 0;
  for (int vi = 0; vi < p.nviews; vi++)
    for (size_t k = 0; k < p.views[vi].size; k++) {
      size_t i = p.views[vi].offset + k;
      double e = fabs(p.data[i] - x[i]);
      if (e > worst) worst = e;
    }
  printf("%-28s max |x - closed form| = %.2e\n", what, worst);
  CHECK(worst < 1e-12);
  CHECK(p.data[p.views[2].offset + 1] == 0); /* the upper triangle is never touched */
  CHECK(o.t == 6);
  kvi_optimizer_free(&o);
  kvi_params_free(&p);
}

static void test_state_tensors(void) {
  kvi_params p;
  build(&p);
  kvi_opt_config c = kvi_opt_config_default(KVI_OPT_ADAM);
  kvi_optimizer o;
  CHECK_OK(kvi_optimizer_init(&o, &c, &p));
  CHECK(o.nstate == 2 * p.nviews);
  kvi_opt_state *m = kvi_optimizer_find_state(&o, "optim.m.l.A");
  kvi_opt_state *v = kvi_optimizer_find_state(&o, "optim.v.l.M");
  CHECK(m && m->ndim == 2 && m->shape[0] == 2 && m->shape[1] == 2 && m->size == 4);
  CHECK(v && v->ndim == 2 && v->shape[0] == 3 && v->shape[1] == 2 && v->view == 0);
  CHECK(kvi_optimizer_find_state(&o, "optim.m.nope") == NULL);
  set_grad(&p, 1);
  CHECK_OK(kvi_optimizer_step(&o, &p, 1e-2));
  CHECK(v && v->data[0] != 0);
  kvi_optimizer_reset(&o);
  CHECK(o.t == 0 && v && v->data[0] == 0);
  int64_t sh[2] = {4, 4};
  kvi_real *f = NULL;
  CHECK_OK(kvi_optimizer_add_state(&o, "kfac.A.l", 2, sh, &f));
  CHECK(f && kvi_optimizer_find_state(&o, "kfac.A.l")->size == 16);
  CHECK_FAILS(kvi_optimizer_add_state(&o, "kfac.A.l", 2, sh, &f)); /* duplicate */
  kvi_optimizer_free(&o);
  kvi_opt_config sgd = kvi_opt_config_default(KVI_OPT_SGD);
  CHECK_OK(kvi_optimizer_init(&o, &sgd, &p));
  CHECK(o.nstate == p.nviews && kvi_optimizer_find_state(&o, "optim.v.l.M") == NULL);
  kvi_params q;
  build(&q);
  int idx;
  kvi_params_free(&q);
  kvi_params_init(&q);
  int64_t one[1] = {5};
  CHECK_OK(kvi_params_add(&q, "x", KVI_ROLE_MEAN, 1, one, &idx));
  CHECK_OK(kvi_params_alloc(&q));
  CHECK_FAILS(kvi_optimizer_step(&o, &q, 1e-2)); /* another block */
  CHECK_FAILS(kvi_optimizer_step(NULL, &p, 1e-2));
  kvi_optimizer_free(&o);
  c.lr = 0;
  CHECK_FAILS(kvi_optimizer_init(&o, &c, &p));
  kvi_params_free(&q);
  kvi_params_free(&p);
}

int main(void) {
  kvi_opt_config adam = kvi_opt_config_default(KVI_OPT_ADAM);
  check_against_reference(adam, "adam");
  adam.weight_decay = 0.5;
  adam.beta1 = 0.8, adam.beta2 = 0.99, adam.eps = 1e-6;
  check_against_reference(adam, "adam, weight decay 0.5");
  kvi_opt_config sgd = kvi_opt_config_default(KVI_OPT_SGD);
  sgd.momentum = 0;
  check_against_reference(sgd, "sgd");
  sgd.momentum = 0.9;
  check_against_reference(sgd, "sgd, momentum 0.9");
  sgd.weight_decay = 0.3;
  check_against_reference(sgd, "sgd, momentum, decay 0.3");
  sgd.nesterov = true;
  check_against_reference(sgd, "sgd, nesterov, decay 0.3");
  test_state_tensors();
  TEST_MAIN_END();
}
