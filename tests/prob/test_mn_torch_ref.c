/* kronvi's MN, DIAG and MVN densities, entropies and KL divergences against PyTorch
 * (torch.distributions, float64) reference values stored in tests/ref/mn_ref.txt (written by
 * tests/ref/gen_mn_ref.py; the file's header documents the format). Relative tolerance 1e-9.
 *
 * Tests run with the repository root as working directory. A missing or malformed fixture is a
 * test failure with a message, never a crash; the reader itself is tested on broken files. */
#include "kronvi/prob.h"
#include "kvi_test.h"

_Static_assert(sizeof(kvi_real) == sizeof(double), "tests link the double-precision library");

#define REF_PATH "tests/ref/mn_ref.txt"
#define REF_TOL 1e-9
#define REF_MAX_ARRAYS 24
#define REF_MAX_COUNT 100000
#define REF_MAX_DIM 64

/* ---- fixture reader ------------------------------------------------------------------------ */
typedef struct {
  char name[32];
  int count;
  double *v;
} ref_array;

typedef struct {
  char kind[16];
  int n, m;
  int narr;
  ref_array arr[REF_MAX_ARRAYS];
} ref_case;

typedef struct {
  FILE *f;
  int line;
  char err[512];
} ref_reader;

/* Next whitespace-separated token, skipping '#' comments. 1: token, 0: end of file, -1: error. */
static int ref_token(ref_reader *r, char *buf, size_t cap) {
  int ch;
  for (;;) {
    ch = fgetc(r->f);
    if (ch == EOF) return 0;
    if (ch == '\n') r->line++;
    if (ch == '#') {
      while ((ch = fgetc(r->f)) != EOF && ch != '\n') {
      }
      if (ch == EOF) return 0;
      r->line++;
      continue;
    }
    if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n') break;
  }
  size_t len = 0;
  while (ch != EOF && ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n' && ch != '#') {
    if (len + 1 >= cap) {
      snprintf(r->err, sizeof r->err, "line %d: token too long", r->line);
      return -1;
    }
    buf[len++] = (char)ch;
    ch = fgetc(r->f);
  }
  buf[len] = 0;
  if (ch != EOF) ungetc(ch, r->f);
  return 1;
}

/* A token that must be present. */
static int ref_need(ref_reader *r, char *buf, size_t cap, const char *what) {
  int t = ref_token(r, buf, cap);
  if (t == 0)
    snprintf(r->err, sizeof r->err, "line %d: unexpected end of file, expected %s", r->line, what);
  return t == 1 ? 0 : -1;
}

static int ref_int(ref_reader *r, int lo, int hi, int *out, const char *what) {
  char buf[64], *end;
  if (ref_need(r, buf, sizeof buf, what)) return -1;
  long v = strtol(buf, &end, 10);
  if (*end || end == buf || v < lo || v > hi) {
    snprintf(r->err, sizeof r->err, "line %d: %s '%s' is not an integer in [%d, %d]", r->line, what,
             buf, lo, hi);
    return -1;
  }
  *out = (int)v;
  return 0;
}

static void ref_case_free(ref_case *c) {
  for (int i = 0; i < c->narr; i++) free(c->arr[i].v);
  c->narr = 0;
}

/* 1: a case was read, 0: clean end of file, -1: malformed (r->err says why). */
static int ref_read_case(ref_reader *r, ref_case *c) {
  char tok[64];
  memset(c, 0, sizeof *c);
  int t = ref_token(r, tok, sizeof tok);
  if (t <= 0) return t;
  if (strcmp(tok, "case")) {
    snprintf(r->err, sizeof r->err, "line %d: expected 'case', got '%s'", r->line, tok);
    return -1;
  }
  if (ref_need(r, c->kind, sizeof c->kind, "a case kind")) return -1;
  if (ref_int(r, 1, REF_MAX_DIM, &c->n, "n") || ref_int(r, 1, REF_MAX_DIM, &c->m, "m")) return -1;
  for (;;) {
    if (ref_need(r, tok, sizeof tok, "an array name or 'end'")) goto fail;
    if (!strcmp(tok, "end")) return 1;
    if (strlen(tok) >= sizeof c->arr[0].name) {
      snprintf(r->err, sizeof r->err, "line %d: array name '%s' too long", r->line, tok);
      goto fail;
    }
    for (int i = 0; i < c->narr; i++)
      if (!strcmp(c->arr[i].name, tok)) {
        snprintf(r->err, sizeof r->err, "line %d: array '%s' given twice", r->line, tok);
        goto fail;
      }
    if (c->narr == REF_MAX_ARRAYS) {
      snprintf(r->err, sizeof r->err, "line %d: too many arrays in one case", r->line);
      goto fail;
    }
    ref_array *a = &c->arr[c->narr];
    memcpy(a->name, tok, strlen(tok) + 1); /* length checked above */
    if (ref_int(r, 1, REF_MAX_COUNT, &a->count, "array count")) goto fail;
    a->v = malloc((size_t)a->count * sizeof(double));
    if (!a->v) {
      snprintf(r->err, sizeof r->err, "out of memory");
      goto fail;
    }
    c->narr++;
    for (int i = 0; i < a->count; i++) {
      char *end;
      if (ref_need(r, tok, sizeof tok, "a number")) goto fail;
      a->v[i] = strtod(tok, &end);
      if (*end || end == tok || !isfinite(a->v[i])) {
        snprintf(r->err, sizeof r->err, "line %d: '%s' in array '%s' is not a finite number",
                 r->line, tok, a->name);
        goto fail;
      }
    }
  }
fail:
  ref_case_free(c);
  return -1;
}

typedef struct {
  ref_case *cases;
  int ncases;
  char err[600];
} ref_file;

static void ref_file_free(ref_file *rf) {
  for (int i = 0; i < rf->ncases; i++) ref_case_free(&rf->cases[i]);
  free(rf->cases);
  rf->cases = NULL;
  rf->ncases = 0;
}

/* 0 on success; -1 with rf->err on a missing or malformed file (nothing left allocated). */
static int ref_load(ref_file *rf, const char *path) {
  memset(rf, 0, sizeof *rf);
  ref_reader r = {fopen(path, "r"), 1, ""};
  if (!r.f) {
    snprintf(rf->err, sizeof rf->err, "%s: cannot open (run from the repository root)", path);
    return -1;
  }
  char tok[64];
  int version = 0;
  if (ref_need(&r, tok, sizeof tok, "the magic 'kronvi-mn-ref'") || strcmp(tok, "kronvi-mn-ref")) {
    if (!r.err[0]) snprintf(r.err, sizeof r.err, "line %d: bad magic '%s'", r.line, tok);
    goto fail;
  }
  if (ref_int(&r, 1, 1, &version, "format version")) goto fail;
  for (;;) {
    ref_case c;
    int t = ref_read_case(&r, &c);
    if (t < 0) goto fail;
    if (t == 0) break;
    ref_case *grown = realloc(rf->cases, (size_t)(rf->ncases + 1) * sizeof *grown);
    if (!grown) {
      ref_case_free(&c);
      snprintf(r.err, sizeof r.err, "out of memory");
      goto fail;
    }
    rf->cases = grown;
    rf->cases[rf->ncases++] = c;
  }
  fclose(r.f);
  if (rf->ncases == 0) {
    snprintf(rf->err, sizeof rf->err, "%s: no cases", path);
    return -1;
  }
  return 0;
fail:
  fclose(r.f);
  ref_file_free(rf);
  snprintf(rf->err, sizeof rf->err, "%s: %s", path, r.err);
  return -1;
}

/* Array `name` with exactly `count` values, or NULL with a message in err. */
static const double *ref_get(const ref_case *c, const char *name, int count, char *err,
                             size_t errcap) {
  for (int i = 0; i < c->narr; i++)
    if (!strcmp(c->arr[i].name, name)) {
      if (c->arr[i].count == count) return c->arr[i].v;
      snprintf(err, errcap, "case %s %d %d: array '%s' has %d values, expected %d", c->kind, c->n,
               c->m, name, c->arr[i].count, count);
      return NULL;
    }
  snprintf(err, errcap, "case %s %d %d: array '%s' missing", c->kind, c->n, c->m, name);
  return NULL;
}

/* ---- comparisons ------------------------------------------------------------------------------
 */
#define GET(var, name, count)                                   \
  const double *var = ref_get(c, name, count, err, sizeof err); \
  if (!var) {                                                   \
    fprintf(stderr, "%s: %s\n", REF_PATH, err);                 \
    return -1;                                                  \
  }

/* Each returns 0 when the case was complete (its comparisons counted by CHECK), -1 when the case
 * lacks arrays (reported; the caller counts a failure). */
static int check_mn(const ref_case *c, kvi_arena *arena) {
  char err[256];
  int n = c->n, m = c->m, nm = n * m;
  GET(M, "M", nm);
  GET(A, "A", n * n);
  GET(B, "B", m * m);
  GET(W, "W", nm);
  GET(prior_var, "prior_var", nm);
  GET(pvs, "prior_var_scalar", 1);
  GET(marg, "marginal_var", nm);
  GET(log_prob, "log_prob", 1);
  GET(entropy, "entropy", 1);
  GET(kl_gauss, "kl_gauss", 1);
  GET(kl_scalar, "kl_gauss_scalar", 1);
  GET(kl_ard, "kl_ard", 1);
  /* a second copy of the factors with junk above the diagonal: it must be ignored */
  double *Aj = malloc((size_t)n * n * sizeof(double)), *Bj = malloc((size_t)m * m * sizeof(double));
  double *var = malloc((size_t)nm * sizeof(double));
  memcpy(Aj, A, (size_t)n * n * sizeof(double));
  memcpy(Bj, B, (size_t)m * m * sizeof(double));
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++) Aj[(size_t)i * n + j] = 123.0 + j;
  for (int i = 0; i < m; i++)
    for (int j = i + 1; j < m; j++) Bj[(size_t)i * m + j] = -77.0 - j;
  for (int junk = 0; junk < 2; junk++) {
    kvi_mn q = {n, m, M, junk ? Aj : A, junk ? Bj : B};
    double out = NAN;
    kvi_arena_mark mark = kvi_arena_get_mark(arena);
    CHECK_OK(kvi_mn_log_prob(&out, &q, W, arena));
    kvi_arena_reset(arena, mark);
    CHECK_NEAR(out, log_prob[0], REF_TOL);
    out = NAN;
    CHECK_OK(kvi_mn_entropy(&out, &q, NULL, 1));
    CHECK_NEAR(out, entropy[0], REF_TOL);
    out = NAN;
    CHECK_OK(kvi_mn_kl_gauss(&out, &q, prior_var, false, NULL, 1));
    CHECK_NEAR(out, kl_gauss[0], REF_TOL);
    out = NAN;
    CHECK_OK(kvi_mn_kl_gauss(&out, &q, pvs, true, NULL, 1));
    CHECK_NEAR(out, kl_scalar[0], REF_TOL);
    out = NAN;
    CHECK_OK(kvi_mn_kl_ard(&out, &q, NULL, 1));
    CHECK_NEAR(out, kl_ard[0], REF_TOL);
    for (int i = 0; i < nm; i++) var[i] = NAN;
    CHECK_OK(kvi_mn_marginal_var(var, &q));
    double worst = 0;
    for (int i = 0; i < nm; i++) {
      double e = fabs(var[i] - marg[i]) / fmax(1.0, fabs(marg[i]));
      worst = isnan(e) ? INFINITY : fmax(worst, e);
    }
    CHECK(worst <= REF_TOL);
  }
  free(Aj), free(Bj), free(var);
  return 0;
}

static int check_diag(const ref_case *c) {
  char err[256];
  int nm = c->n * c->m;
  GET(mu, "mu", nm);
  GET(log_sigma, "log_sigma", nm);
  GET(W, "W", nm);
  GET(prior_var, "prior_var", nm);
  GET(pvs, "prior_var_scalar", 1);
  GET(log_prob, "log_prob", 1);
  GET(entropy, "entropy", 1);
  GET(kl_gauss, "kl_gauss", 1);
  GET(kl_scalar, "kl_gauss_scalar", 1);
  GET(kl_ard, "kl_ard", 1);
  kvi_diag q = {c->n, c->m, mu, log_sigma};
  double out = NAN;
  CHECK_OK(kvi_diag_log_prob(&out, &q, W));
  CHECK_NEAR(out, log_prob[0], REF_TOL);
  out = NAN;
  CHECK_OK(kvi_diag_entropy(&out, &q, NULL, 1));
  CHECK_NEAR(out, entropy[0], REF_TOL);
  out = NAN;
  CHECK_OK(kvi_diag_kl_gauss(&out, &q, prior_var, false, NULL, 1));
  CHECK_NEAR(out, kl_gauss[0], REF_TOL);
  out = NAN;
  CHECK_OK(kvi_diag_kl_gauss(&out, &q, pvs, true, NULL, 1));
  CHECK_NEAR(out, kl_scalar[0], REF_TOL);
  out = NAN;
  CHECK_OK(kvi_diag_kl_ard(&out, &q, NULL, 1));
  CHECK_NEAR(out, kl_ard[0], REF_TOL);
  return 0;
}

static int check_mvn(const ref_case *c) {
  char err[256];
  int d = c->n;
  if (c->m != 1) {
    fprintf(stderr, "%s: case mvn %d %d: m must be 1\n", REF_PATH, c->n, c->m);
    return -1;
  }
  GET(mu, "mu", d);
  GET(L, "L", d * d);
  GET(z, "z", d);
  GET(log_prob, "log_prob", 1);
  GET(entropy, "entropy", 1);
  GET(kl_std, "kl_std", 1);
  kvi_mvn q = {d, mu, L};
  double out = NAN;
  CHECK_OK(kvi_mvn_log_prob(&out, &q, z, NULL, NULL, 1));
  CHECK_NEAR(out, log_prob[0], REF_TOL);
  out = NAN;
  CHECK_OK(kvi_mvn_entropy(&out, &q, NULL, 1));
  CHECK_NEAR(out, entropy[0], REF_TOL);
  out = NAN;
  CHECK_OK(kvi_mvn_kl_std(&out, &q, NULL, 1));
  CHECK_NEAR(out, kl_std[0], REF_TOL);
  return 0;
}

static void test_fixture(void) {
  ref_file rf;
  if (ref_load(&rf, REF_PATH)) {
    fprintf(stderr, "fixture: %s\n", rf.err);
    CHECK(!"reference fixture could not be read");
    return;
  }
  kvi_arena *arena = kvi_arena_create(1 << 16);
  CHECK(arena != NULL);
  if (!arena) {
    ref_file_free(&rf);
    return;
  }
  int nmn = 0, ndiag = 0, nmvn = 0;
  for (int k = 0; k < rf.ncases; k++) {
    const ref_case *c = &rf.cases[k];
    int bad;
    if (!strcmp(c->kind, "mn"))
      bad = check_mn(c, arena), nmn += !bad;
    else if (!strcmp(c->kind, "diag"))
      bad = check_diag(c), ndiag += !bad;
    else if (!strcmp(c->kind, "mvn"))
      bad = check_mvn(c), nmvn += !bad;
    else {
      fprintf(stderr, "%s: unknown case kind '%s'\n", REF_PATH, c->kind);
      bad = 1;
    }
    CHECK(!bad);
  }
  printf("fixture: %d mn, %d diag, %d mvn cases compared\n", nmn, ndiag, nmvn);
  CHECK(nmn >= 4);
  CHECK(ndiag >= 4);
  CHECK(nmvn >= 1);
  kvi_arena_free(arena);
  ref_file_free(&rf);
}

/* ---- the reader on broken files ----------------------------------------------------------------
 */
static void expect_load_fails(const char *content, const char *label) {
  char path[1024];
  snprintf(path, sizeof path, "%s/mn_ref_broken.txt", kvi_test_dir());
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs(content, f);
  fclose(f);
  ref_file rf;
  int rc = ref_load(&rf, path);
  if (rc == 0) {
    /* parses, but a case must then fail the completeness check */
    char err[256];
    bool incomplete = false;
    for (int k = 0; k < rf.ncases; k++) {
      const ref_case *c = &rf.cases[k];
      incomplete |= ref_get(c, "M", c->n * c->m, err, sizeof err) == NULL;
    }
    ref_file_free(&rf);
    if (!incomplete) fprintf(stderr, "broken fixture '%s' was accepted\n", label);
    CHECK(incomplete);
  } else {
    CHECK(rf.err[0] != 0 && rf.cases == NULL);
  }
  remove(path);
}

static void test_reader_errors(void) {
  ref_file rf;
  CHECK(ref_load(&rf, "tests/ref/does_not_exist.txt") != 0 && rf.err[0]);
  expect_load_fails("", "empty");
  expect_load_fails("# only a comment\n", "comment only");
  expect_load_fails("kronvi-mn-reff 1\n", "bad magic");
  expect_load_fails("kronvi-mn-ref 2\ncase mn 1 1\nM 1 0\nend\n", "bad version");
  expect_load_fails("kronvi-mn-ref 1\n", "no cases");
  expect_load_fails("kronvi-mn-ref 1\ncase mn 2 3\nM 6 1 2 3\n", "truncated array");
  expect_load_fails("kronvi-mn-ref 1\ncase mn 2 3\nM 6 1 2 3 4 5 6\n", "missing end");
  expect_load_fails("kronvi-mn-ref 1\ncase mn 2 3\nM 6 1 2 3 4 5 6x\nend\n", "bad number");
  expect_load_fails("kronvi-mn-ref 1\ncase mn 2 3\nM 6 1 2 nan 4 5 6\nend\n", "nan");
  expect_load_fails("kronvi-mn-ref 1\ncase mn 2 3\nM 999999999 1\nend\n", "huge count");
  expect_load_fails("kronvi-mn-ref 1\ncase mn 2 3\nM -1\nend\n", "negative count");
  expect_load_fails("kronvi-mn-ref 1\ncase mn 0 3\nend\n", "zero size");
  expect_load_fails("kronvi-mn-ref 1\ncase mn 2\n", "short header");
  expect_load_fails("kronvi-mn-ref 1\ncase mn 2 3\nM 5 1 2 3 4 5\nend\n", "wrong count");
  expect_load_fails("kronvi-mn-ref 1\ncase mn 2 3\nA 1 0\nend\n", "missing array");
  expect_load_fails("kronvi-mn-ref 1\ncase mn 1 1\nM 1 0\nM 1 0\nend\n", "duplicate array");
  expect_load_fails("kronvi-mn-ref 1\nend\n", "end without case");
  char longtok[300];
  memset(longtok, '7', sizeof longtok - 1);
  longtok[sizeof longtok - 1] = 0;
  char buf[512];
  snprintf(buf, sizeof buf, "kronvi-mn-ref 1\ncase mn 1 1\nM 1 %s\nend\n", longtok);
  expect_load_fails(buf, "long token");
  /* a well-formed minimal file with comments in odd places does load */
  snprintf(buf, sizeof buf, "%s/mn_ref_ok.txt", kvi_test_dir());
  FILE *f = fopen(buf, "w");
  CHECK(f != NULL);
  if (f) {
    fputs("# c\nkronvi-mn-ref 1 # trailing\ncase mn 1 2 # x\nM 2 1.5 -2e-3#y\nend", f);
    fclose(f);
    CHECK(ref_load(&rf, buf) == 0);
    if (rf.ncases == 1) {
      char err[256];
      const double *M = ref_get(&rf.cases[0], "M", 2, err, sizeof err);
      CHECK(M && M[0] == 1.5 && M[1] == -2e-3);
    }
    ref_file_free(&rf);
    remove(buf);
  }
}

int main(void) {
  test_reader_errors();
  test_fixture();
  TEST_MAIN_END();
}
