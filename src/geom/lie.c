/* Matrix Lie groups for structured natural-gradient descent (docs/geom.md section 5): the group
 * structures, the projection M = C (.) kappa(X) onto the Lie sub-algebra with the weights of the
 * exact Fisher matrix, and the structure-preserving update B <- B h(M) with its safety rules. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "geom/geom_internal.h"

#define KVI__LIE_MIN_RATIO 1e-12 /* smallest / largest pivot of a new B */

static bool kvi__simple_ok(const kvi__sg *g) {
  const int p = g->p, k = g->k;
  if (g->kb != 0 && g->kind != KVI_LIE_HIER && g->kind != KVI_LIE_SPCHOL) return false;
  switch (g->kind) {
    case KVI_LIE_DENSE:
    case KVI_LIE_TRIL:
    case KVI_LIE_DIAG:
    case KVI_LIE_TOEPLITZ:
      return p >= 1;
    case KVI_LIE_BLOCK_UP:
    case KVI_LIE_BLOCK_LOW:
      return p >= 1 && k >= 0 && k <= p;
    case KVI_LIE_BLOCK_DIAG:
      return p >= 1 && k >= 1 && k <= p;
    case KVI_LIE_HIER:
    case KVI_LIE_SPCHOL:
      return p >= 1 && k >= 0 && g->kb >= 0 && k <= p - g->kb;
    default:
      return false;
  }
}

kvi__sg kvi__sg_of(const kvi_lie_group *g, int which) {
  kvi__sg s = {g->kind, g->p, g->k, g->kb};
  if (which == 1) s = (kvi__sg){g->kind1, g->p1, g->k1, g->kb1};
  if (which == 2) s = (kvi__sg){g->kind2, g->p2, g->k2, g->kb2};
  return s;
}

kvi_status kvi_lie_group_check(const kvi_lie_group *g) {
  if (!g) return kvi_fail(KVI_ERR_ARG, "lie group: NULL");
  const kvi__sg s = kvi__sg_of(g, 0), s1 = kvi__sg_of(g, 1), s2 = kvi__sg_of(g, 2);
  if (g->kind == KVI_LIE_KRON) {
    if (g->p1 < 1 || g->p2 < 1 || (long)g->p1 * g->p2 != g->p || g->kb != 0 ||
        !kvi__simple_ok(&s1) || !kvi__simple_ok(&s2))
      return kvi_fail(KVI_ERR_ARG, "lie group kron: p = %d, factors %d x %d (kinds %d, %d)", g->p,
                      g->p1, g->p2, (int)g->kind1, (int)g->kind2);
    return KVI_OK;
  }
  if (!kvi__simple_ok(&s))
    return kvi_fail(KVI_ERR_ARG,
                    "lie group: kind %d with p = %d, k = %d, kb = %d is not a group (blocks "
                    "need 0 <= k, k + kb <= p, kb only for hier and spchol; bdiag 1 <= k <= p; "
                    "p >= 1)",
                    (int)g->kind, g->p, g->k, g->kb);
  return KVI_OK;
}

static const char *kvi__kind_name(const kvi__sg *g, char *buf, size_t size) {
  const int k = g->k;
  switch (g->kind) {
    case KVI_LIE_DENSE:
      snprintf(buf, size, "dense");
      break;
    case KVI_LIE_TRIL:
      snprintf(buf, size, "tril");
      break;
    case KVI_LIE_BLOCK_UP:
      snprintf(buf, size, "up%d", k);
      break;
    case KVI_LIE_BLOCK_LOW:
      snprintf(buf, size, "low%d", k);
      break;
    case KVI_LIE_BLOCK_DIAG:
      snprintf(buf, size, "bdiag%d", k);
      break;
    case KVI_LIE_DIAG:
      snprintf(buf, size, "diag");
      break;
    case KVI_LIE_TOEPLITZ:
      snprintf(buf, size, "toeplitz");
      break;
    case KVI_LIE_HIER:
      snprintf(buf, size, "hier%d,%d", k, g->kb);
      break;
    case KVI_LIE_SPCHOL:
      snprintf(buf, size, "spchol%d,%d", k, g->kb);
      break;
    default:
      snprintf(buf, size, "?");
      break;
  }
  return buf;
}

const char *kvi_lie_group_name(const kvi_lie_group *g, char *buf, size_t size) {
  const kvi__sg s = kvi__sg_of(g, 0), s1 = kvi__sg_of(g, 1), s2 = kvi__sg_of(g, 2);
  if (g->kind != KVI_LIE_KRON) return kvi__kind_name(&s, buf, size);
  char a[32], b[32];
  snprintf(buf, size, "kron%dx%d(%s,%s)", g->p1, g->p2, kvi__kind_name(&s1, a, 32),
           kvi__kind_name(&s2, b, 32));
  return buf;
}

/* A whole name with one or two integers: "up5", "hier5,3" (no trailing characters, no blanks or
 * signs that sscanf would skip or take). */
static bool kvi__scan(const char *s, const char *fmt, int want, int *a, int *b) {
  if (strpbrk(s, " \t\n\v\f\r+")) return false;
  int n = -1, got = want == 1 ? sscanf(s, fmt, a, &n) : sscanf(s, fmt, a, b, &n);
  return got == want && n >= 0 && s[n] == '\0';
}

static bool kvi__parse_kind(const char *s, kvi_lie_kind *kind, int *k, int *kb) {
  *k = 0, *kb = 0;
  if (!strcmp(s, "dense"))
    *kind = KVI_LIE_DENSE;
  else if (!strcmp(s, "tril"))
    *kind = KVI_LIE_TRIL;
  else if (!strcmp(s, "diag"))
    *kind = KVI_LIE_DIAG;
  else if (!strcmp(s, "toeplitz"))
    *kind = KVI_LIE_TOEPLITZ;
  else if (kvi__scan(s, "hier%d,%d%n", 2, k, kb))
    *kind = KVI_LIE_HIER;
  else if (kvi__scan(s, "spchol%d,%d%n", 2, k, kb))
    *kind = KVI_LIE_SPCHOL;
  else if (sscanf(s, "up%d", k) == 1)
    *kind = KVI_LIE_BLOCK_UP;
  else if (sscanf(s, "low%d", k) == 1)
    *kind = KVI_LIE_BLOCK_LOW;
  else if (sscanf(s, "bdiag%d", k) == 1)
    *kind = KVI_LIE_BLOCK_DIAG;
  else
    return false;
  return true;
}

kvi_status kvi_lie_group_parse(kvi_lie_group *g, const char *s, int p) {
  memset(g, 0, sizeof *g);
  g->p = p;
  char a[32], b[32];
  int p1;
  if (s && sscanf(s, "kron:%d:%31[^:]:%31s", &p1, a, b) == 3) {
    g->kind = KVI_LIE_KRON;
    g->p1 = p1, g->p2 = p1 > 0 ? p / p1 : 0;
    if (!kvi__parse_kind(a, &g->kind1, &g->k1, &g->kb1) ||
        !kvi__parse_kind(b, &g->kind2, &g->k2, &g->kb2))
      return kvi_fail(KVI_ERR_ARG, "lie group '%s': unknown factor kind", s);
  } else if (!s || !kvi__parse_kind(s, &g->kind, &g->k, &g->kb)) {
    return kvi_fail(KVI_ERR_ARG,
                    "lie group '%s' (expected dense, tril, diag, upK, lowK, bdiagK, toeplitz, "
                    "hierK,KB, spcholK,KB or kron:P1:KIND1:KIND2)",
                    s ? s : "(null)");
  }
  return kvi_lie_group_check(g);
}

bool kvi__lie_free(const kvi__sg *g, int i, int j, bool *sym) {
  const int k = g->k;
  *sym = false;
  switch (g->kind) {
    case KVI_LIE_DENSE:
      *sym = true;
      return true;
    case KVI_LIE_TRIL:
    case KVI_LIE_TOEPLITZ:
      return j <= i;
    case KVI_LIE_DIAG:
      return i == j;
    case KVI_LIE_BLOCK_DIAG:
      *sym = true;
      return i / k == j / k;
    case KVI_LIE_BLOCK_UP:
      if (i < k && j < k) return *sym = true;
      if (i < k) return true;
      return i == j;
    case KVI_LIE_BLOCK_LOW:
      if (i < k && j < k) return *sym = true;
      if (i >= k && j < k) return true;
      return i == j;
    case KVI_LIE_HIER: { /* BLOCK_LOW(k) whose lower-right part is BLOCK_LOW(kb) */
      if (j < k) return i < k ? (*sym = true) : true;
      if (i < k) return false;
      const kvi__sg in = {KVI_LIE_BLOCK_LOW, g->p - k, g->kb, 0};
      return kvi__lie_free(&in, i - k, j - k, sym);
    }
    case KVI_LIE_SPCHOL: { /* [[D_1, 0, 0], [B_A, B_B, 0], [D_2, 0, D_3]] */
      const int e = k + g->kb;
      if (i < k) return i == j;                 /* D_1 */
      if (i < e && j < k) return true;          /* B_A */
      if (i < e) return j < e && (*sym = true); /* B_B */
      return i == j || (j == i - e && j < k);   /* D_3, D_2 (entries (e + t, t), t < k) */
    }
    default:
      return false;
  }
}

int kvi_lie_in_group(const kvi_lie_group *g, const double *B, double tol) {
  if (g->kind == KVI_LIE_KRON) return 0; /* the factors are stored, not their product */
  if (g->kind == KVI_LIE_TOEPLITZ) return kvi__toep_in_group(g->p, B, tol);
  const kvi__sg sg = kvi__sg_of(g, 0);
  bool sym;
  for (int i = 0; i < g->p; i++)
    for (int j = 0; j < g->p; j++)
      if (!kvi__lie_free(&sg, i, j, &sym) && fabs(B[(size_t)i * g->p + j]) > tol) return 0;
  return 1;
}

static void kvi__project(const kvi__sg *g, double *M, const double *X) {
  const int p = g->p;
  if (g->kind == KVI_LIE_TOEPLITZ) { /* tied entries: not entrywise (G35) */
    kvi__toep_project(p, M, X);
    return;
  }
  bool sym;
  for (int i = 0; i < p; i++)
    for (int j = 0; j < p; j++) {
      double v = 0;
      if (kvi__lie_free(g, i, j, &sym)) {
        if (i == j)
          v = 0.5 * X[(size_t)i * p + i];
        else if (sym)
          v = 0.25 * (X[(size_t)i * p + j] + X[(size_t)j * p + i]);
        else
          v = X[(size_t)i * p + j];
      }
      M[(size_t)i * p + j] = v;
    }
}

/* kvi__project for a sparse group from its pattern t: the same entries, p^2 - nnz fewer calls. */
static void kvi__project_pat(const kvi__sg *g, const kvi__pat *t, double *M, const double *X) {
  const int p = g->p;
  bool sym;
  memset(M, 0, (size_t)p * p * sizeof *M);
  for (int i = 0; i < p; i++)
    for (int a = t->rp[i]; a < t->rp[i + 1]; a++) {
      const int j = t->ci[a];
      kvi__lie_free(g, i, j, &sym);
      const size_t ij = (size_t)i * p + j, ji = (size_t)j * p + i;
      M[ij] = i == j ? 0.5 * X[ij] : sym ? 0.25 * (X[ij] + X[ji]) : X[ij];
    }
}

kvi_status kvi_lie_project(const kvi_lie_group *g, double *M, const double *X) {
  kvi_status s = kvi_lie_group_check(g);
  if (s) return s;
  if (g->kind == KVI_LIE_KRON)
    return kvi_fail(KVI_ERR_ARG, "lie_project: a Kronecker group projects per factor");
  if (!M || !X) return kvi_fail(KVI_ERR_ARG, "lie_project: NULL argument");
  const kvi__sg sg = kvi__sg_of(g, 0);
  kvi__project(&sg, M, X);
  return KVI_OK;
}

void kvi_lie_h(int p, double *H, const double *M) { kvi__dh(p, H, M); }

/* Sum of squares, scaling and finiteness of a p x p matrix on all its entries (t NULL) or on the
 * pattern t, in row-major order: zeros elsewhere change none of them. */
static double kvi__norm2_on(const kvi__pat *t, int p, const double *A) {
  if (!t) return kvi__dnorm2(A, (size_t)p * p);
  double s = 0;
  for (int i = 0; i < p; i++)
    for (int a = t->rp[i]; a < t->rp[i + 1]; a++) {
      const double v = A[(size_t)i * p + t->ci[a]];
      s += v * v;
    }
  return s;
}

static void kvi__scale_on(const kvi__pat *t, int p, double *A, double c) {
  if (!t)
    for (size_t e = 0; e < (size_t)p * p; e++) A[e] *= c;
  for (int i = 0; t && i < p; i++)
    for (int a = t->rp[i]; a < t->rp[i + 1]; a++) A[(size_t)i * p + t->ci[a]] *= c;
}

static bool kvi__finite_on(const kvi__pat *t, int p, const double *A) {
  if (!t) return kvi__dfinite(A, (size_t)p * p);
  for (int i = 0; i < p; i++)
    for (int a = t->rp[i]; a < t->rp[i + 1]; a++)
      if (!isfinite(A[(size_t)i * p + t->ci[a]])) return false;
  return true;
}

/* Scales M (zero outside t, if given) to Frobenius norm max_norm when larger; true if it did. */
static bool kvi__damp(const kvi__pat *t, int p, double *M, double max_norm) {
  const double nrm = sqrt(kvi__norm2_on(t, p, M)), bound = max_norm > 0 ? max_norm : 1;
  if (!(nrm > bound)) return false;
  kvi__scale_on(t, p, M, bound / nrm);
  return true;
}

/* Bn = B h(M) for one simple group on its pattern (t: the sparse groups' pattern, or NULL to
 * build it), with a finiteness and pivot check; w: kvi__scratch(p) doubles. */
static bool kvi__apply(const kvi__sg *g, const kvi__pat *t, double *Bn, const double *B,
                       const double *M, double *w, int *ipiv) {
  const int p = g->p;
  double *H = w;
  kvi__pat own = {0};
  if (g->kind == KVI_LIE_TOEPLITZ) { /* on the first columns, exactly Toeplitz */
    kvi__toep_apply(p, Bn, B, M, w);
  } else if (!kvi__lie_sparse(g)) { /* BLAS; the products of the pattern's zeros stay zeros */
    kvi__dh(p, H, M);
    kvi__dgemm(false, false, p, p, p, 1, B, H, 0, Bn);
  } else {
    if (!t && !kvi__pat_make(&own, g, false)) return false;
    if (!t) t = &own;
    kvi__pat_mul(t, M, M, H); /* h(M) = I + M + M^2/2, zero outside t */
    for (int i = 0; i < p; i++)
      for (int a = t->rp[i]; a < t->rp[i + 1]; a++) {
        const size_t e = (size_t)i * p + t->ci[a];
        H[e] = 0.5 * H[e] + M[e];
      }
    for (int i = 0; i < p; i++) H[(size_t)i * p + i] += 1;
    kvi__pat_mul(t, B, H, Bn);
  }
  const bool finite = kvi__finite_on(t, p, Bn); /* Bn is zero outside the pattern t */
  kvi__pat_free(&own);
  if (!finite) return false;
  return kvi__lie_pivot_ratio(g, Bn, w, ipiv) >= KVI__LIE_MIN_RATIO;
}

static double *kvi__alloc(size_t n) {
  double *w = malloc((n ? n : 1) * sizeof *w);
  if (!w) kvi_fail(KVI_ERR_NOMEM, "lie: out of memory (%zu doubles)", n);
  return w;
}

/* The scratch of kvi__apply: p^2 doubles (3 p for Toeplitz). */
static size_t kvi__scratch(int p) {
  return (size_t)p * p > 3 * (size_t)p ? (size_t)p * p : 3 * (size_t)p;
}

/* B <- B h(M) for a simple group with safety; M may be modified (damped). t: the pattern of a
 * sparse group (M zero outside it), or NULL; work: kvi__scratch(p) + p^2 doubles, or NULL to
 * allocate them. */
static kvi_status kvi__update_simple(const kvi__sg *g, double *B, double *M, kvi_lie_safety *safe,
                                     const kvi__pat *t, double *work) {
  const int p = g->p;
  const size_t pp = (size_t)p * p;
  if (kvi__damp(t, p, M, safe ? safe->max_norm : 1) && safe) safe->damped++;
  const size_t ws = kvi__scratch(p);
  double *w = work ? work : kvi__alloc(ws + pp);
  int *ipiv = malloc((size_t)p * sizeof *ipiv);
  if (!w || !ipiv) {
    if (w != work) free(w);
    free(ipiv);
    return kvi_fail(KVI_ERR_NOMEM, "lie_update: out of memory");
  }
  double *Bn = w + ws;
  bool ok = kvi__finite_on(t, p, M) && kvi__apply(g, t, Bn, B, M, w, ipiv);
  if (ok) memcpy(B, Bn, pp * sizeof *B);
  if (w != work) free(w);
  free(ipiv);
  if (!ok && safe) safe->rejected++;
  return ok ? KVI_OK
            : kvi_fail(KVI_ERR_LINALG,
                       "lie_update: B h(M) is not finite or near-singular "
                       "(step rejected)");
}

kvi_status kvi__lie_update(const kvi_lie_group *g, double *B, const double *X, double beta,
                           kvi_lie_safety *safe, const kvi__pats *c) {
  const int p = g->p;
  const kvi__pat *t = c && c->sparse ? &c->t : NULL;
  const bool cached = c && c->w;
  double *M = cached ? c->w : kvi__alloc((size_t)p * p);
  if (!M) return KVI_ERR_NOMEM;
  const kvi__sg sg = kvi__sg_of(g, 0);
  if (t)
    kvi__project_pat(&sg, t, M, X);
  else
    kvi__project(&sg, M, X);
  kvi__scale_on(t, p, M, beta);
  kvi_status s = kvi__update_simple(&sg, B, M, safe, t, cached ? M + (size_t)p * p : NULL);
  if (!cached) free(M);
  return s;
}

bool kvi__pats_make(kvi__pats *c, const kvi_lie_group *g, bool with_pat) {
  memset(c, 0, sizeof *c);
  if (g->kind == KVI_LIE_KRON) return true;
  const kvi__sg sg = kvi__sg_of(g, 0);
  const size_t pp = (size_t)g->p * g->p;
  c->sparse = kvi__lie_sparse(&sg);
  bool ok = (c->w = malloc((2 * pp + kvi__scratch(g->p)) * sizeof *c->w)) != NULL;
  if (ok && (c->sparse || with_pat))
    ok = kvi__pat_make(&c->t, &sg, false) && kvi__pat_make(&c->u, &sg, true);
  if (!ok) kvi__pats_free(c);
  return ok;
}

void kvi__pats_free(kvi__pats *c) {
  kvi__pat_free(&c->t), kvi__pat_free(&c->u);
  free(c->w);
  memset(c, 0, sizeof *c);
}

kvi_status kvi_lie_update(const kvi_lie_group *g, double *B, const double *X, double beta,
                          kvi_lie_safety *safe) {
  kvi_status s = kvi_lie_group_check(g);
  if (s) return s;
  if (g->kind == KVI_LIE_KRON) return kvi_fail(KVI_ERR_ARG, "lie_update: use lie_update_kron");
  if (!B || !X) return kvi_fail(KVI_ERR_ARG, "lie_update: NULL argument");
  return kvi__lie_update(g, B, X, beta, safe, NULL);
}

kvi_status kvi_lie_update_kron(const kvi_lie_group *g, double *B1, double *B2, const double *X1,
                               const double *X2, double beta, kvi_lie_safety *safe) {
  kvi_status s = kvi_lie_group_check(g);
  if (s) return s;
  if (g->kind != KVI_LIE_KRON || !B1 || !B2 || !X1 || !X2)
    return kvi_fail(KVI_ERR_ARG, "lie_update_kron: not a Kronecker group or NULL argument");
  const int p1 = g->p1, p2 = g->p2;
  double *M1 = kvi__alloc((size_t)p1 * p1 + (size_t)p2 * p2 * 2 + (size_t)p1 * p1);
  if (!M1) return KVI_ERR_NOMEM;
  double *M2 = M1 + (size_t)p1 * p1, *B2s = M2 + (size_t)p2 * p2, *B1s = B2s + (size_t)p2 * p2;
  const kvi__sg s1 = kvi__sg_of(g, 1), s2 = kvi__sg_of(g, 2);
  kvi__project(&s1, M1, X1);
  kvi__project(&s2, M2, X2);
  for (size_t i = 0; i < (size_t)p1 * p1; i++) M1[i] *= beta / p2;
  for (size_t i = 0; i < (size_t)p2 * p2; i++) M2[i] *= beta / p1;
  /* the scale direction (c I, -c I) is shared: each factor takes half of the total scale step
   * instead of all of it (G26) */
  const double t1 = kvi__dtrace(p1, M1) / p1, t2 = kvi__dtrace(p2, M2) / p2;
  for (int i = 0; i < p1; i++) M1[(size_t)i * p1 + i] += 0.25 * (t1 + t2) - t1;
  for (int i = 0; i < p2; i++) M2[(size_t)i * p2 + i] += 0.25 * (t1 + t2) - t2;
  memcpy(B1s, B1, (size_t)p1 * p1 * sizeof *B1s);
  memcpy(B2s, B2, (size_t)p2 * p2 * sizeof *B2s);
  s = kvi__update_simple(&s1, B1s, M1, safe, NULL, NULL);
  if (!s) s = kvi__update_simple(&s2, B2s, M2, safe, NULL, NULL);
  if (!s) { /* both or neither */
    memcpy(B1, B1s, (size_t)p1 * p1 * sizeof *B1);
    memcpy(B2, B2s, (size_t)p2 * p2 * sizeof *B2);
  }
  free(M1);
  return s;
}
