/* The data-parallel keying without MPI (docs/distributed.md): a process that handles rows
 * [r0, r1) of a batch draws exactly the numbers a single process draws for those rows.
 * - kvi_rng_normal_at: every offset and length is the matching slice of one kvi_rng_normal;
 * - kvi_net_forward_rows: every layer's noise is the rows' slice (of each part: MN+DIAG has two)
 *   of the whole batch's, bit for bit, the stream advances as for the whole batch, and the
 *   outputs agree to rounding, for MLP and CNN, mn, diag and mn-diag, shares of 1 to 4
 *   processes (some empty);
 * - the loss parts add up to the whole batch's loss, their gradient rows are the whole's;
 * - kvi_sampled_output_grad_rows: the rows' slice of the whole, classification and regression. */
#include "kronvi/train.h"
#include "kvi_test.h"

enum { B = 7 };

static void check_net(const char *arch, int in_size, int in_hw, kvi_family fam) {
  kvi_net_config cfg = kvi_net_config_default();
  cfg.family = fam;
  cfg.prior = KVI_PRIOR_ARD;
  cfg.init_log_sigma = -1; /* noise that matters */
  cfg.in_h = cfg.in_w = in_hw;
  kvi_net *net = NULL;
  CHECK_OK(kvi_net_create(&net, arch, in_size, &cfg, B, 3));
  if (!net) return;
  const int K = net->out_size, nl = net->nlayers;
  kvi_real *X = malloc(sizeof(kvi_real) * B * in_size), *Y = malloc(sizeof(kvi_real) * B * K);
  kvi_rng data = kvi_rng_stream(11, 0);
  kvi_rng_normal(&data, X, (size_t)B * in_size);
  /* the whole batch */
  kvi_real *noise[64] = {NULL};
  const kvi_real *out;
  kvi_rng whole = kvi_rng_stream(5, 77);
  CHECK_OK(kvi_net_forward(net, &out, X, B, &whole));
  memcpy(Y, out, sizeof(kvi_real) * B * K);
  for (int i = 0; i < nl; i++) {
    const kvi_layer *L = &net->layers[i];
    const size_t nz = L->ops->noise_size ? L->ops->noise_size(L, B) : 0;
    if (nz)
      noise[i] = malloc(nz * sizeof(kvi_real)),
      memcpy(noise[i], net->noise[i], nz * sizeof(kvi_real));
  }
  double worst = 0;
  int slices = 0, bad = 0;
  for (int P = 1; P <= 4; P++)
    for (int r = 0; r < P; r++) {
      int r0, r1;
      kvi_comm_share(B, r, P, &r0, &r1);
      const int b = r1 - r0;
      if (b == 0) continue;
      kvi_rng part = kvi_rng_stream(5, 77);
      CHECK_OK(kvi_net_forward_rows(net, &out, X + (size_t)r0 * in_size, b, &part, r0, B));
      CHECK(part.ctr == whole.ctr && part.key == whole.key);
      for (int i = 0; i < nl; i++) {
        if (!noise[i]) continue;
        const kvi_layer *L = &net->layers[i];
        const int parts = L->ops->noise_parts ? L->ops->noise_parts(L) : 1;
        const size_t per = L->ops->noise_size(L, 1) / (size_t)parts;
        for (int p = 0; p < parts; p++, slices++)
          bad += memcmp(net->noise[i] + (size_t)p * b * per,
                        noise[i] + ((size_t)p * B + (size_t)r0) * per,
                        (size_t)b * per * sizeof(kvi_real)) != 0;
      }
      for (size_t j = 0; j < (size_t)b * K; j++) {
        const double y = Y[(size_t)r0 * K + j], d = fabs(out[j] - y) / fmax(1, fabs(y));
        worst = d > worst ? d : worst;
      }
    }
  CHECK(bad == 0);
  CHECK(worst < 1e-5);
  printf("%-22s %-7s noise of every share: %d slices, %d differ; outputs within %.1e\n", arch,
         kvi_family_name(fam), slices, bad, worst);
  for (int i = 0; i < nl; i++) free(noise[i]);
  free(X), free(Y);
  kvi_net_free(net);
}

static void check_losses(void) {
  const int K = 5;
  kvi_real Z[B * 5], T[B * 5], dw[B * 5], dp[B * 5], d1[B * 5], d2[B * 5];
  int32_t y[B];
  kvi_rng r = kvi_rng_stream(2, 2);
  kvi_rng_normal(&r, Z, B * K);
  kvi_rng_normal(&r, T, B * K);
  for (int i = 0; i < B; i++) y[i] = (i * 3) % K;
  for (int cls = 0; cls < 2; cls++) {
    double whole, sum = 0;
    kvi_real lbw = 0, lbp = 0;
    if (cls)
      CHECK_OK(kvi_softmax_xent(&whole, dw, NULL, NULL, Z, y, B, K));
    else
      CHECK_OK(kvi_gauss_nll(&whole, dw, &lbw, Z, T, 0.3f, B, K));
    int bad = 0;
    for (int r0 = 0, r1; r0 < B; r0 = r1) {
      r1 = r0 + 3 < B ? r0 + 3 : B;
      double l;
      const size_t o = (size_t)r0 * K;
      if (cls)
        CHECK_OK(kvi_softmax_xent_part(&l, dp, NULL, NULL, Z + o, y + r0, r1 - r0, K, B));
      else
        CHECK_OK(kvi_gauss_nll_part(&l, dp, &lbp, Z + o, T + o, 0.3f, r1 - r0, K, B));
      sum += l;
      bad += memcmp(dp, dw + o, (size_t)(r1 - r0) * K * sizeof(kvi_real)) != 0;
    }
    CHECK(bad == 0);
    CHECK_NEAR(sum, whole, 1e-12);
    if (!cls) CHECK_NEAR(lbp, lbw, 1e-5);
    /* sampled targets of the pullback trick */
    kvi_rng a = kvi_rng_stream(4, 9), c = kvi_rng_stream(4, 9);
    kvi_sampled_output_grad(d1, Z, B, K, cls, 0.3f, &a);
    bad = 0;
    for (int r0 = 0, r1; r0 < B; r0 = r1) {
      r1 = r0 + 2 < B ? r0 + 2 : B;
      kvi_rng q = kvi_rng_stream(4, 9);
      kvi_sampled_output_grad_rows(d2, Z + (size_t)r0 * K, r1 - r0, K, cls, 0.3f, &q, r0, B);
      bad += memcmp(d2, d1 + (size_t)r0 * K, (size_t)(r1 - r0) * K * sizeof(kvi_real)) != 0;
      c = q;
    }
    CHECK(bad == 0 && c.ctr == a.ctr);
    printf(
        "%s: loss parts sum to the batch's (%.3e apart), gradient rows and sampled targets "
        "identical\n",
        cls ? "softmax" : "gaussian", fabs(sum - whole));
  }
}

int main(void) {
  /* normals at any offset: slices of one draw */
  kvi_real all[64], at[64];
  kvi_rng r = kvi_rng_stream(8, 1);
  r.ctr = 5;
  kvi_rng s = r;
  kvi_rng_normal(&s, all, 61);
  int bad = 0;
  for (size_t off = 0; off < 12; off++)
    for (size_t len = 0; off + len <= 61; len += 1 + len / 3) {
      kvi_rng_normal_at(&r, off, at, len);
      bad += memcmp(at, all + off, len * sizeof(kvi_real)) != 0;
    }
  CHECK(bad == 0 && r.ctr == 5);
  check_net("12-6-5", 12, 0, KVI_FAMILY_MN);
  check_net("12-6-5", 12, 0, KVI_FAMILY_DIAG);
  check_net("12-6-5", 12, 0, KVI_FAMILY_MNDIAG);
  check_net("1-3-mp-flatten-4", 36, 6, KVI_FAMILY_MN);
  check_net("1-3-mp-flatten-4", 36, 6, KVI_FAMILY_DIAG);
  check_net("1-3-mp-flatten-4", 36, 6, KVI_FAMILY_MNDIAG);
  check_losses();
  TEST_MAIN_END();
}
