/* Same numbers across refactors: trains small Fashion-MNIST networks (MLP mn / diag / mn-diag /
 * point with SGD, group-ARD MLP with prior updates and fine-tuning, CNN mn, a regression net
 * with a fixed and a learnt noise precision) for a fixed number of steps from a seed and
 * compares a 64-bit FNV-1a digest of every parameter tensor with the digest recorded before the
 * layer/optimizer/trainer interfaces were introduced. Seven of the nine are bit-identical to
 * that code. Two differ on purpose, and their digests were recorded after the change:
 *   mlp-point-wd: weight decay now applies to the means only, no longer to the biases;
 *   regr-learn:   the noise log precision is an ordinary parameter stepped by the generic Adam
 *                 (its constants in kvi_real: 1 - (float)0.9 instead of 0.1f; the bias
 *                 corrections folded into the step size) instead of a hand-written Adam.
 * regr-fixed (the same net without learning the noise) is bit-identical, which isolates the
 * second difference. cnn-mn was re-recorded when the convolution passes became chunked: the
 * parameter gradients are summed per chunk and gradient group (docs/nn-conv.md, "Execution").
 * All rows were re-recorded when two things changed the sums on purpose: kvi_gemm's panels start
 * at the multiple of 16 nearest to an equal split (the 784-wide products split 400 | 384, which
 * Haswell's kernels round differently), and the MN noise's triangular products are column
 * panels of equal work (a trmm and a gemm each; mn, mn-diag, group and cnn-mn). The AVX2 rows
 * were recorded with a build whose clones are AVX2 and baseline only, under OPENBLAS_CORETYPE
 * set to each core (that build reproduced every earlier AVX2 row before the change).
 * cnn-mn was re-recorded once more when the first layer's MN sampled passes became direct
 * convolutions (src/nn/conv_mn.c: other sums than im2col + GEMM; every other row unchanged).
 * BLAS kernels round differently on other cores, and the SIMD clones of the elementwise kernels
 * sum in another order at another vector width (kvi_simd_isa), so the digests are compared only
 * on the (core, ISA) they were recorded on (elsewhere they are printed). */
// ctest-timeout: 300
// ctest-label: long
#include "kronvi/train.h"
#include "kvi_test.h"

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

/* Digest over the views of the parameters, in declaration order, by name and bytes. Views that
 * name the regression noise are left out (they moved from the trainer into the parameters). */
static uint64_t params_digest(const kvi_params *p) {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < p->nviews; i++) {
    const kvi_view *v = &p->views[i];
    if (!strncmp(v->name, "noise.", 6)) continue;
    h = fnv1a(h, v->name, strlen(v->name));
    h = fnv1a(h, p->data + v->offset, v->size * sizeof(kvi_real));
  }
  return h;
}

typedef struct {
  const char *name, *arch;
  kvi_family family;
  kvi_prior prior;
  int64_t rows;
  int epochs, finetune;
  kvi_opt_kind opt;
  double weight_decay;
} same_case;

static kvi_dataset fashion, fashion_small;
/* Digests per BLAS core and SIMD clone (Haswell and Zen share their kernels; with AVX-512 only
 * the families whose gradients hold vectorized sums (mn, mn-diag, the regression net) differ
 * from AVX2), in the order of the cases:
 * mlp-mn, mlp-diag, mlp-mndiag, mlp-point, mlp-point-wd, mlp-group, cnn-mn, regr-fixed,
 * regr-learn. */
static const struct {
  const char *core, *isa;
  uint64_t d[9];
} recorded[] = {
    {"Prescott",
     "avx2",
     {0xb36af3e2086faba3ull, 0xc6ee4e1cc1e19aedull, 0x2c1f73a24abbd3ceull, 0x38b557951b3151a0ull,
      0x25f6b133b3b8bf28ull, 0x4cfbfcc0330f63dbull, 0xbe295aca8a89d5fcull, 0x38279ad76f39b6a6ull,
      0x74d11c569ff43fddull}},
    {"Haswell",
     "avx2",
     {0xe1ab7c070ae34c67ull, 0x40309081fe7a4131ull, 0x41f51e04898dd2f0ull, 0xe7380aad68f7d52aull,
      0xa60a7a9f6f2cbb88ull, 0x485b31e9a82aa8daull, 0xfe1bcf2da70c21cfull, 0x0441e9f7feb1e176ull,
      0x01484003fc520c5dull}},
    {"Zen",
     "avx2",
     {0xe1ab7c070ae34c67ull, 0x40309081fe7a4131ull, 0x41f51e04898dd2f0ull, 0xe7380aad68f7d52aull,
      0xa60a7a9f6f2cbb88ull, 0x485b31e9a82aa8daull, 0xfe1bcf2da70c21cfull, 0x0441e9f7feb1e176ull,
      0x01484003fc520c5dull}},
    {"SkylakeX",
     "avx2",
     {0xd847fa3733c0fb4aull, 0x6910d1191705b3f5ull, 0x2174e201c41def44ull, 0x74cd78a4513d4086ull,
      0xfa018046e08711e6ull, 0x0c27582b9df74e7aull, 0xb3a34f7e88cc80e9ull, 0x1526ee30bc75213eull,
      0xb2efdac9ed9c422full}},
    {"Cooperlake",
     "avx2",
     {0x3dc62fbeff090f6eull, 0xf2ce5943adcddfc8ull, 0x74087b392b7d6708ull, 0xd032b2322724c44dull,
      0xc14fa44aef0df9d4ull, 0x4cbe98a2da648f89ull, 0xf83f196a9d6c580dull, 0x1526ee30bc75213eull,
      0xb2efdac9ed9c422full}},
    {"Prescott",
     "avx512",
     {0x394740ff4146590eull, 0xc6ee4e1cc1e19aedull, 0x46da2b7c0a92fa05ull, 0x38b557951b3151a0ull,
      0x25f6b133b3b8bf28ull, 0x4cfbfcc0330f63dbull, 0x649585154b06032cull, 0xb9a9dc3203925044ull,
      0x1b4f898688c6c6deull}},
    {"SkylakeX",
     "avx512",
     {0xc7dce5658a3e9513ull, 0x6910d1191705b3f5ull, 0xa1f7da6b7c26ecfeull, 0x74cd78a4513d4086ull,
      0xfa018046e08711e6ull, 0x0c27582b9df74e7aull, 0x15e7ea7acc42d205ull, 0x0b1d396a9cda2e04ull,
      0x079def5bd9bee4e3ull}},
    {"Cooperlake",
     "avx512",
     {0x2cdb2076bb5d46f9ull, 0xf2ce5943adcddfc8ull, 0x0d78267053af7923ull, 0xd032b2322724c44dull,
      0xc14fa44aef0df9d4ull, 0x4cbe98a2da648f89ull, 0xb3c251a3a50cfbf5ull, 0x0b1d396a9cda2e04ull,
      0x079def5bd9bee4e3ull}},
};
static int core_row = -1; /* row of recorded[] for this machine's core, -1: none */

static void check_digest(const char *name, uint64_t h, int idx) {
  bool have = core_row >= 0;
  uint64_t want = have ? recorded[core_row].d[idx] : 0;
  printf("%-12s %016llx%s\n", name, (unsigned long long)h,
         !have       ? "  (no digest recorded for this BLAS core)"
         : want == h ? "  same"
                     : "  MISMATCH");
  if (have) CHECK(want == h);
}

static void run_case(const same_case *c, int idx) {
  kvi_net_config nc = kvi_net_config_default();
  nc.family = c->family;
  nc.prior = c->family == KVI_FAMILY_POINT ? KVI_PRIOR_NONE : c->prior;
  kvi_train_config cfg = kvi_train_config_default();
  cfg.epochs = c->epochs;
  cfg.batch = 100;
  cfg.opt = kvi_opt_config_default(c->opt);
  cfg.opt.lr = c->opt == KVI_OPT_SGD ? 1e-2 : 1e-3;
  cfg.opt.weight_decay = c->weight_decay;
  cfg.kl_warmup = 1;
  cfg.samples = 0;
  cfg.progress = 0;
  cfg.seed = 11;
  cfg.finetune_pruned = c->finetune;
  cfg.prior_update_every = 3;
  kvi_dataset *ds = c->rows <= fashion_small.n ? &fashion_small : &fashion;
  kvi_net *net = NULL;
  kvi_trainer tr;
  nc.in_h = ds->h, nc.in_w = ds->w;
  CHECK_OK(kvi_net_create(&net, c->arch, ds->d, &nc, 100, 5));
  if (!net) return;
  CHECK_OK(kvi_trainer_init(&tr, net, &cfg));
  CHECK_OK(kvi_train(&tr, ds, NULL, NULL));
  uint64_t h = params_digest(net->params);
  check_digest(c->name, h, idx);
  kvi_trainer_free(&tr);
  kvi_net_free(net);
}

/* A regression problem with a learnt noise precision: y = sin(x0) + x1 / 2 + noise. */
static void run_regression(const char *name, bool learn_noise, int idx) {
  kvi_dataset ds;
  kvi_dataset_init(&ds);
  CHECK_OK(kvi_dataset_alloc(&ds, 400, 4, 0, 0, 0, 0, 1));
  kvi_rng r = kvi_rng_stream(3, 1);
  kvi_rng_normal(&r, ds.x, 400 * 4);
  kvi_rng_normal(&r, ds.t, 400);
  for (int i = 0; i < 400; i++)
    ds.t[i] = (kvi_real)(sin(ds.x[i * 4]) + 0.5 * ds.x[i * 4 + 1] + 0.1 * ds.t[i]);
  kvi_net_config nc = kvi_net_config_default();
  nc.noise_param = true;
  kvi_train_config cfg = kvi_train_config_default();
  cfg.task = KVI_TASK_REGRESS;
  cfg.epochs = 5;
  cfg.batch = 50;
  cfg.opt.lr = 1e-2;
  cfg.samples = 0;
  cfg.progress = 0;
  cfg.learn_noise = learn_noise;
  cfg.noise_precision = 4;
  kvi_net *net = NULL;
  kvi_trainer tr;
  CHECK_OK(kvi_net_create(&net, "4-20-1", 4, &nc, 50, 5));
  CHECK_OK(kvi_trainer_init(&tr, net, &cfg));
  CHECK_OK(kvi_train(&tr, &ds, NULL, NULL));
  uint64_t h = params_digest(net->params);
  check_digest(name, h, idx);
  kvi_trainer_free(&tr);
  kvi_net_free(net);
  kvi_dataset_free(&ds);
}

int main(void) {
  const char *dir = getenv("KRONVI_FASHION");
  if (!dir) dir = "/usr/share/datasets/fashion-mnist";
  kvi_dataset test;
  kvi_set_threads(2);
  for (size_t i = 0; i < sizeof recorded / sizeof recorded[0]; i++)
    if (!strcmp(kvi_blas_core(), recorded[i].core) && !strcmp(kvi_simd_isa(), recorded[i].isa))
      core_row = (int)i;
  printf("BLAS core %s, SIMD %s%s\n", kvi_blas_core(), kvi_simd_isa(),
         core_row < 0 ? " (no digests recorded)" : "");
  /* the larger set held as bytes (as `kronvi train` loads it), the smaller as numbers: the
   * digests are the same either way */
  if (kvi_data_load_dir_bytes(&fashion, &test, dir, 1000, 1)) {
    fprintf(stderr, "Fashion-MNIST not found in %s: %s\n", dir, kvi_last_error());
    return 1;
  }
  kvi_dataset_free(&test);
  CHECK_OK(kvi_data_load_dir(&fashion_small, &test, dir, 300, 1));
  kvi_dataset_free(&test);
  const same_case cases[] = {
      {"mlp-mn", "784-300-300-300-10", KVI_FAMILY_MN, KVI_PRIOR_ARD, 1000, 2, 0, KVI_OPT_ADAM, 0},
      {"mlp-diag", "784-300-300-300-10", KVI_FAMILY_DIAG, KVI_PRIOR_ARD, 1000, 2, 0, KVI_OPT_ADAM,
       0},
      {"mlp-mndiag", "784-300-300-300-10", KVI_FAMILY_MNDIAG, KVI_PRIOR_ARD, 1000, 2, 0,
       KVI_OPT_ADAM, 0},
      {"mlp-point", "784-300-10", KVI_FAMILY_POINT, KVI_PRIOR_NONE, 1000, 2, 0, KVI_OPT_SGD, 0},
      {"mlp-point-wd", "784-300-10", KVI_FAMILY_POINT, KVI_PRIOR_NONE, 1000, 2, 0, KVI_OPT_SGD,
       1e-3},
      {"mlp-group", "784-100-10", KVI_FAMILY_MN, KVI_PRIOR_GROUP, 1000, 3, 1, KVI_OPT_ADAM, 0},
      {"cnn-mn", "1-10-mp-20-mp-40-mp-80-mp-flatten-10", KVI_FAMILY_MN, KVI_PRIOR_ARD, 300, 2, 0,
       KVI_OPT_ADAM, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], (int)i);
  run_regression("regr-fixed", false, 7);
  run_regression("regr-learn", true, 8);
  kvi_dataset_free(&fashion);
  kvi_dataset_free(&fashion_small);
  TEST_MAIN_END();
}
