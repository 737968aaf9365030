/* The solvers inside the trainer (docs/curv.md, "Training with the solvers"), double precision:
 * on a small synthetic classification set each of lbfgs, newton, lm, hf and proximal lowers the
 * training loss of a point MLP within a few full-batch epochs; lm on a regression; results are
 * the same for the same seed; variational families and a learned noise are refused. */
#include "kronvi/curv.h"
#include "kronvi/train.h"
#include "kvi_test.h"

static void make_data(kvi_dataset *ds, bool cls) {
  const int n = 120, d = 4;
  CHECK_OK(kvi_dataset_alloc(ds, n, d, 0, 0, 0, cls ? 3 : 0, cls ? 0 : 1));
  kvi_rng r = kvi_rng_stream(4, 4);
  kvi_rng_normal(&r, ds->x, (size_t)n * d);
  for (int i = 0; i < n; i++) {
    const kvi_real *x = ds->x + (size_t)i * d;
    if (cls)
      ds->y[i] = x[0] + 0.5 * x[1] > 0.3 ? 0 : x[2] - x[3] > 0 ? 1 : 2;
    else
      ds->t[i] = sin(x[0]) + 0.5 * x[1] * x[2];
  }
}

/* Final training loss of `epochs` full-batch epochs of kind (NAN: the trainer failed). */
static double train_loss(kvi_opt_kind kind, bool cls, int epochs, kvi_family fam, bool learn) {
  kvi_dataset ds;
  make_data(&ds, cls);
  kvi_net_config nc = kvi_net_config_default();
  nc.family = fam, nc.prior = fam == KVI_FAMILY_POINT ? KVI_PRIOR_NONE : KVI_PRIOR_ARD;
  nc.noise_param = !cls;
  kvi_net *net = NULL;
  CHECK_OK(kvi_net_create(&net, "4-16-16-3", 4, &nc, 120, 5));
  if (!cls) {
    kvi_net_free(net);
    CHECK_OK(kvi_net_create(&net, "4-16-1", 4, &nc, 120, 5));
  }
  kvi_train_config tc = kvi_train_config_default();
  tc.task = cls ? KVI_TASK_CLASSIFY : KVI_TASK_REGRESS;
  tc.opt = kvi_opt_config_default(kind);
  tc.opt.lr = kind == KVI_OPT_PROXIMAL ? 1e-2 : tc.opt.lr;
  tc.epochs = epochs, tc.batch = 120, tc.samples = 0, tc.progress = 0, tc.learn_noise = learn;
  tc.opt.cg_max = 50;
  kvi_trainer t;
  double loss = NAN;
  kvi_status s = kvi_trainer_init(&t, net, &tc);
  if (s == KVI_OK) {
    CHECK_OK(kvi_train(&t, &ds, NULL, NULL));
    kvi_curv *cv = NULL;
    CHECK_OK(kvi_curv_create(&cv, net));
    kvi_curv_batch b = {cls ? KVI_LOSS_XENT : KVI_LOSS_SQUARED,
                        ds.x,
                        120,
                        ds.y,
                        ds.t,
                        kvi_net_log_beta(net),
                        NULL,
                        0};
    CHECK_OK(kvi_curv_eval(cv, &b, &loss, NULL, NULL));
    kvi_curv_free(cv);
    kvi_trainer_free(&t);
  }
  kvi_net_free(net);
  kvi_dataset_free(&ds);
  return loss;
}

int main(void) {
  const double l0 = train_loss(KVI_OPT_LBFGS, true, 0, KVI_FAMILY_POINT, false);
  const kvi_opt_kind kinds[] = {KVI_OPT_LBFGS, KVI_OPT_NEWTON,   KVI_OPT_LM,
                                KVI_OPT_HF,    KVI_OPT_PROXIMAL, KVI_OPT_ADAM};
  for (int k = 0; k < 6; k++) {
    const double l = train_loss(kinds[k], true, 8, KVI_FAMILY_POINT, false);
    printf("%-9s training loss %.4f -> %.4f after 8 full-batch epochs\n", kvi_opt_name(kinds[k]),
           l0, l);
    if (kinds[k] != KVI_OPT_ADAM) CHECK(l < 0.8 * l0); /* Adam: 8 steps of 1e-3, for scale */
  }
  const double r0 = train_loss(KVI_OPT_LM, false, 0, KVI_FAMILY_POINT, false);
  const double r1 = train_loss(KVI_OPT_LM, false, 8, KVI_FAMILY_POINT, false);
  printf("lm regression: loss %.4f -> %.4f\n", r0, r1);
  CHECK(r1 < r0 - 0.1);
  CHECK(train_loss(KVI_OPT_HF, true, 3, KVI_FAMILY_POINT, false) ==
        train_loss(KVI_OPT_HF, true, 3, KVI_FAMILY_POINT, false)); /* deterministic */
  CHECK(isnan(train_loss(KVI_OPT_LM, true, 1, KVI_FAMILY_MN, false)));
  CHECK(strstr(kvi_last_error(), "--family point") != NULL);
  CHECK(isnan(train_loss(KVI_OPT_LM, false, 1, KVI_FAMILY_POINT, true)));
  TEST_MAIN_END();
}
