/* Core: status table, arena, RNG (moments, determinism across thread counts), BLAS wrappers,
 * parameter views and the KVI_ASSERT on their indices. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvi_test.h"

static void test_status(void) {
  CHECK(strcmp(kvi_status_name(KVI_ERR_SHAPE), "KVI_ERR_SHAPE") == 0);
  CHECK(kvi_fail(KVI_ERR_ARG, "bad %d", 7) == KVI_ERR_ARG);
  CHECK(strcmp(kvi_last_error(), "bad 7") == 0);
  kvi_clear_error();
  CHECK(kvi_last_error()[0] == 0);
}

static void test_arena(void) {
  kvi_arena *a = kvi_arena_create(1024);
  CHECK(a != NULL);
  kvi_arena_mark m0 = kvi_arena_get_mark(a);
  char *p1 = kvi_arena_alloc(a, 100);
  char *p2 = kvi_arena_alloc(a, 3u << 20); /* larger than a chunk */
  CHECK(p1 && p2 && ((uintptr_t)p1 % 64) == 0 && ((uintptr_t)p2 % 64) == 0);
  memset(p2, 1, 3u << 20);
  size_t cap = kvi_arena_capacity(a);
  kvi_arena_reset(a, m0);
  char *q1 = kvi_arena_alloc(a, 100);
  char *q2 = kvi_arena_alloc(a, 3u << 20);
  CHECK(q1 == p1 && q2 == p2); /* reuse, no new chunks */
  CHECK(kvi_arena_capacity(a) == cap);
  CHECK(kvi_arena_peak(a) >= (3u << 20));
  kvi_arena_free(a);
}

static void test_rng(void) {
  enum { N = 1100001 }; /* above the parallel threshold of the fills */
  kvi_real *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
  kvi_set_threads(1);
  kvi_rng r = kvi_rng_stream(42, 7);
  kvi_rng_normal(&r, x, N);
  kvi_set_threads(2);
  kvi_rng r2 = kvi_rng_stream(42, 7);
  kvi_rng_normal(&r2, y, N);
  CHECK(memcmp(x, y, N * sizeof *x) == 0); /* bit-identical across thread counts */
  CHECK(r.ctr == r2.ctr);
  double s = 0, s2 = 0, s4 = 0;
  for (int i = 0; i < N; i++) s += x[i], s2 += x[i] * x[i], s4 += x[i] * x[i] * x[i] * x[i];
  double mean = s / N, var = s2 / N - mean * mean;
  /* 5 standard errors: se(mean) = 1/sqrt(N), se(var) = sqrt(2/N) */
  CHECK(fabs(mean) < 5 / sqrt((double)N));
  CHECK(fabs(var - 1) < 5 * sqrt(2.0 / N));
  CHECK(fabs(s4 / N - 3) < 5 * sqrt(96.0 / N));
  /* different streams differ; consecutive fills continue the stream */
  kvi_rng r3 = kvi_rng_stream(42, 8);
  kvi_rng_normal(&r3, y, 16);
  CHECK(memcmp(x, y, 16 * sizeof *x) != 0);
  kvi_rng r4 = kvi_rng_stream(42, 7);
  kvi_rng_normal(&r4, y, 8);
  kvi_rng_normal(&r4, y + 8, 8);
  CHECK(memcmp(x, y, 16 * sizeof *x) == 0);
  kvi_rng_uniform(&r4, y, N);
  double mn = 1, mx = 0, su = 0;
  for (int i = 0; i < N; i++) mn = fmin(mn, y[i]), mx = fmax(mx, y[i]), su += y[i];
  CHECK(mn > 0 && mx < 1);
  CHECK(fabs(su / N - 0.5) < 5 * sqrt(1.0 / 12 / N));
  int64_t idx[10];
  for (int i = 0; i < 10; i++) idx[i] = i;
  kvi_rng_shuffle(&r4, idx, 10);
  int seen[10] = {0};
  for (int i = 0; i < 10; i++) seen[idx[i]]++;
  for (int i = 0; i < 10; i++) CHECK(seen[i] == 1);
  free(x);
  free(y);
}

static void test_blas(void) {
  int N = 300, K = 37;
  kvi_real *A = malloc(sizeof(kvi_real) * N * K), *B = malloc(sizeof(kvi_real) * K * N);
  kvi_real *C1 = calloc((size_t)N * N, sizeof(kvi_real)),
           *C2 = calloc((size_t)N * N, sizeof(kvi_real));
  kvi_rng r = kvi_rng_stream(1, 1);
  kvi_rng_normal(&r, A, (size_t)N * K);
  kvi_rng_normal(&r, B, (size_t)N * K);
  /* A^T-shaped use: op(A) = A^T with A stored (K, N) */
  kvi_gemm(true, false, N, N, K, 1, A, N, B, N, 0, C1, N);
  kvi_gemm_lower(true, false, N, K, 1, A, N, B, N, 0, C2, N);
  double err = 0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j <= i; j++) err = fmax(err, fabs(C1[i * N + j] - C2[i * N + j]));
  CHECK(err < 1e-9);
  /* Cholesky of an SPD matrix and its inverse */
  int n = 5;
  kvi_real S[25], L[25], Si[25];
  kvi_syrk(false, n, K, 1, A, K, 0, S, n); /* lower of A(5,K) A^T */
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++) S[i * n + j] = S[j * n + i];
  memcpy(L, S, sizeof S);
  memcpy(Si, S, sizeof S);
  CHECK_OK(kvi_potrf(n, L, n));
  CHECK_OK(kvi_spd_inverse(n, Si, n));
  kvi_real P[25];
  kvi_gemm(false, false, n, n, n, 1, S, n, Si, n, 0, P, n);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) CHECK_NEAR(P[i * n + j], i == j ? 1.0 : 0.0, 1e-8);
  kvi_real bad[4] = {1, 2, 2, 1};
  CHECK_FAILS(kvi_potrf(2, bad, 2));
  CHECK_FAILS(kvi_potrf(0, bad, 2));
  free(A), free(B), free(C1), free(C2);
}

/* kvi_trmm_right_lower(_t_add) against the in-place trmm, unit and non-unit diagonal, on one
 * and two threads: equal to rounding, and bit-identical between the thread counts. */
static void test_trmm_panels(void) {
  const int M = 37, N = 400;
  kvi_real *L = malloc(sizeof(kvi_real) * N * N), *X = malloc(sizeof(kvi_real) * M * N);
  kvi_real *R = malloc(sizeof(kvi_real) * M * N), *Z[2], *D[2],
           *T = malloc(sizeof(kvi_real) * M * N);
  kvi_rng r = kvi_rng_stream(3, 1);
  kvi_rng_normal(&r, L, (size_t)N * N);
  kvi_rng_normal(&r, X, (size_t)M * N);
  for (int i = 0; i < N * N; i++) L[i] *= 0.05f;
  for (int unit = 0; unit < 2; unit++)
    for (int trans = 0; trans < 2; trans++) {
      memcpy(R, X, sizeof(kvi_real) * M * N);
      kvi_set_threads(1);
      kvi_trmm(true, trans, unit, M, N, 1, L, N, R, N);
      for (int t = 0; t < 2; t++) {
        kvi_set_threads(t + 1);
        Z[t] = calloc((size_t)M * N, sizeof(kvi_real));
        D[t] = Z[t];
        if (trans)
          kvi_trmm_right_lower_t_add(unit, M, N, L, N, X, N, D[t], N, T);
        else
          kvi_trmm_right_lower(unit, M, N, L, N, X, N, Z[t], N);
      }
      double err = 0, scale = 0;
      for (int i = 0; i < M * N; i++)
        err = fmax(err, fabs(Z[0][i] - R[i])), scale = fmax(scale, fabs(R[i]));
      CHECK(err < 1e-5 * scale);
      CHECK(!memcmp(Z[0], Z[1], sizeof(kvi_real) * M * N));
      free(Z[0]), free(Z[1]);
    }
  kvi_set_threads(1);
  free(L), free(X), free(R), free(T);
}

/* kvi_gemm_pair against the two products run one after the other, for the shapes of a dense
 * layer's backward (dW += X^T dY, dX = dY W^T) and a pair of unequal work, on one and two
 * threads: equal to rounding; the panels are a function of the shapes and kvi_set_threads, so
 * the threads that actually run them (the governor's kvi_set_active_threads) change nothing. */
static void test_gemm_pair(void) {
  const int shapes[][3] = {{100, 300, 300}, {100, 784, 300}, {100, 40, 300}, {7, 5, 3}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const int B = shapes[s][0], n = shapes[s][1], m = shapes[s][2];
    kvi_real *X = malloc(sizeof(kvi_real) * B * n), *dY = malloc(sizeof(kvi_real) * B * m);
    kvi_real *W = malloc(sizeof(kvi_real) * n * m), *ref = malloc(sizeof(kvi_real) * n * m);
    kvi_real *refx = malloc(sizeof(kvi_real) * B * n), *got[2], *gotx[2];
    kvi_rng r = kvi_rng_stream(11, (uint64_t)s);
    kvi_rng_normal(&r, X, (size_t)B * n);
    kvi_rng_normal(&r, dY, (size_t)B * m);
    kvi_rng_normal(&r, W, (size_t)n * m);
    for (int i = 0; i < n * m; i++) ref[i] = W[i]; /* accumulate onto W (beta 1) */
    kvi_set_threads(1);
    kvi_gemm(true, false, n, m, B, 1, X, n, dY, m, 1, ref, m);
    kvi_gemm(false, true, B, n, m, 1, dY, m, W, m, 0, refx, n);
    for (int t = 0; t < 2; t++) {
      kvi_set_threads(2);
      kvi_set_active_threads(t + 1);
      got[t] = malloc(sizeof(kvi_real) * n * m), gotx[t] = malloc(sizeof(kvi_real) * B * n);
      memcpy(got[t], W, sizeof(kvi_real) * n * m);
      const kvi_gemm_args gw = {true, false, n, m, B, 1, X, n, dY, m, 1, got[t], m},
                          gx = {false, true, B, n, m, 1, dY, m, W, m, 0, gotx[t], n};
      kvi_gemm_pair(&gw, &gx);
    }
    double err = 0;
    for (int i = 0; i < n * m; i++) err = fmax(err, fabs(got[0][i] - ref[i]) / (1 + fabs(ref[i])));
    for (int i = 0; i < B * n; i++)
      err = fmax(err, fabs(gotx[0][i] - refx[i]) / (1 + fabs(refx[i])));
    CHECK(err < (sizeof(kvi_real) == 8 ? 1e-12 : 1e-4));
    CHECK(!memcmp(got[0], got[1], sizeof(kvi_real) * n * m));
    CHECK(!memcmp(gotx[0], gotx[1], sizeof(kvi_real) * B * n));
    free(X), free(dY), free(W), free(ref), free(refx);
    for (int t = 0; t < 2; t++) free(got[t]), free(gotx[t]);
  }
  kvi_set_threads(1);
}

/* kvi_gemm_panels / kvi_gemm_panel: the panels of a product, run in reverse order inside a
 * parallel region (where kvi_gemm itself would make one call), give kvi_gemm's bits at the top
 * level, on two threads set; large products are cut, small ones are one panel. */
static void test_gemm_panels(void) {
  const int shapes[][4] = {{100, 300, 300, 0}, {64, 720, 100, 1}, {300, 64, 100, 0}, {7, 5, 3, 1}};
  kvi_set_threads(2);
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
    const bool ta = shapes[s][3];
    kvi_real *A = malloc(sizeof(kvi_real) * M * K), *B = malloc(sizeof(kvi_real) * K * N);
    kvi_real *ref = malloc(sizeof(kvi_real) * M * N), *got = malloc(sizeof(kvi_real) * M * N);
    kvi_rng r = kvi_rng_stream(12, (uint64_t)s);
    kvi_rng_normal(&r, A, (size_t)M * K);
    kvi_rng_normal(&r, B, (size_t)K * N);
    kvi_rng_normal(&r, ref, (size_t)M * N);
    memcpy(got, ref, sizeof(kvi_real) * M * N);
    kvi_gemm(ta, false, M, N, K, 1, A, ta ? M : K, B, N, 1, ref, N);
    const kvi_gemm_args g = {ta, false, M, N, K, 1, A, ta ? M : K, B, N, 1, got, N};
    const int np = kvi_gemm_panels(&g);
    CHECK(np == ((double)M * N * K >= 1 << 20 ? 2 : 1));
#pragma omp parallel for schedule(dynamic, 1) num_threads(2)
    for (int t = np - 1; t >= 0; t--) kvi_gemm_panel(&g, t, np);
    CHECK(!memcmp(got, ref, sizeof(kvi_real) * M * N));
    free(A), free(B), free(ref), free(got);
  }
  kvi_set_threads(1);
}

static void test_params(void) {
  kvi_params p;
  kvi_params_init(&p);
  int i0, i1;
  int64_t s0[2] = {3, 5}, s1[1] = {7};
  CHECK_OK(kvi_params_add(&p, "l0.M", KVI_ROLE_MEAN, 2, s0, &i0));
  CHECK_OK(kvi_params_add(&p, "l0.b", KVI_ROLE_BIAS, 1, s1, &i1));
  CHECK_FAILS(kvi_params_add(&p, "l0.M", KVI_ROLE_MEAN, 2, s0, NULL));
  int64_t bad[1] = {0};
  CHECK_FAILS(kvi_params_add(&p, "z", KVI_ROLE_MEAN, 1, bad, NULL));
  CHECK_OK(kvi_params_alloc(&p));
  CHECK(kvi_params_find(&p, "l0.b") == i1);
  CHECK(kvi_params_find(&p, "nope") == -1);
  CHECK(((uintptr_t)kvi_params_data(&p, i1) % 64) == 0);
  CHECK(kvi_params_data(&p, i1) >= kvi_params_data(&p, i0) + 15);
  CHECK_FAILS(kvi_params_add(&p, "late", KVI_ROLE_MEAN, 1, s1, NULL));
  kvi_real v[2] = {1, NAN};
  CHECK_FAILS(kvi_check_finite(v, 2, "v"));
  kvi_params_free(&p);
}

/* kvi_params_data (or _grad) with a bad index, in a child: it must die of SIGABRT after the
 * KVI_ASSERT line on stderr. */
static void expect_abort(const kvi_params *p, int index, bool grad) {
  int fd[2];
  CHECK(pipe(fd) == 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    close(fd[0]);
    dup2(fd[1], 2);
    kvi_real *volatile x = grad ? kvi_params_grad(p, index) : kvi_params_data(p, index);
    (void)x;
    _exit(0);
  }
  close(fd[1]);
  char msg[1024];
  size_t len = 0;
  ssize_t k;
  while (len < sizeof msg - 1 && (k = read(fd[0], msg + len, sizeof msg - 1 - len)) > 0)
    len += (size_t)k;
  msg[len] = 0;
  close(fd[0]);
  int st = 0;
  CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
  CHECK(strstr(msg, "kronvi: internal error: ") && strstr(msg, "params.c:"));
  if (!WIFSIGNALED(st) || !strstr(msg, "internal error"))
    fprintf(stderr, "index %d: child status 0x%x, stderr: %s\n", index, st, msg);
}

static void test_params_assert(void) {
  kvi_params p;
  kvi_params_init(&p);
  int64_t s0[1] = {4};
  CHECK_OK(kvi_params_add(&p, "a", KVI_ROLE_MEAN, 1, s0, NULL));
  CHECK_OK(kvi_params_add(&p, "b", KVI_ROLE_BIAS, 1, s0, NULL));
  CHECK_OK(kvi_params_alloc(&p));
  CHECK(kvi_params_data(&p, 1) && kvi_params_grad(&p, 1));
  for (int g = 0; g < 2; g++) {
    expect_abort(&p, p.nviews, g);
    expect_abort(&p, -1, g);
    expect_abort(NULL, 0, g);
  }
  kvi_params_free(&p);
}

int main(void) {
  test_status();
  test_arena();
  test_rng();
  test_blas();
  test_trmm_panels();
  test_gemm_pair();
  test_gemm_panels();
  test_params();
  test_params_assert();
  TEST_MAIN_END();
}
