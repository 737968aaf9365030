/* Structured compression (docs/train.md, "Structured compression"): removes whole neurons /
 * filters whose outgoing weights are all pruned (log alpha > threshold) or whose incoming
 * weights are all pruned, and writes a smaller network whose mean-weight predictions equal those
 * of the pruned network.
 *
 * For consecutive weight layers L, L+1 and channel j of L's output (C = L.m channels; L+1's
 * rows r with r % C == j belong to channel j: taps of a convolution, positions after a flatten,
 * or the single row of a dense layer after a dense layer):
 *   col_zero_j: column j of L's pruned mean is zero, so the channel outputs the constant
 *               v_j = act(b_j) everywhere (max-pooling keeps it constant);
 *   row_zero_j: L+1's pruned rows of channel j are zero on L+1's kept columns.
 * Kept: !col_zero && !row_zero. Channels with col_zero && !row_zero && v_j != 0 are merged into
 * one "ghost" unit g of L (zero weights, bias 1, act(1) = 1) whose rows in L+1 are
 * sum_j v_j * rows(j): exact also at a padded border, where the original channels were 0 too.
 * L+1's new weight is W' = T W (T: rows selected / combined), which maps every family exactly:
 * MN U' = T U T^T, DIAG and the MN+DIAG diagonal Var' = (T o T) Var (the combined rows of T have
 * disjoint supports). L's columns are selected: V' = V[J,J] (+ the ghost's tiny variance). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/train.h"

#define KVI__GHOST_VAR 1e-12 /* variance of the ghost unit's (zero-mean) weights */
#define KVI__MAX_WL 64

/* The output channels of one weight layer after compression. */
typedef struct {
  int m;      /* channels before */
  int nkeep;  /* kept original channels, in increasing order: keep[0..nkeep) */
  int *keep;  /* (m) */
  int ghost;  /* 1: a constant unit appended after the kept ones */
  int merged; /* channels folded into the ghost */
  double *v;  /* (m) coefficient of channel j in the ghost's rows (0: not merged) */
  int forced; /* every channel was removable: channel 0 kept */
} kvi__chan;

/* Sparse T: new row r holds the entries [ptr[r], ptr[r+1]) of (src, coef). */
typedef struct {
  int n_old, n_new;
  int *ptr, *src;
  double *coef;
  bool identity;
} kvi__rowmap;

static void kvi__rowmap_free(kvi__rowmap *T) {
  free(T->ptr), free(T->src), free(T->coef);
  memset(T, 0, sizeof *T);
}

/* T of a layer with n_old inputs fed by the channels c (NULL: the data, identity). */
static kvi_status kvi__rowmap_build(kvi__rowmap *T, int n_old, const kvi__chan *c) {
  memset(T, 0, sizeof *T);
  int C = c ? c->m : 1, Cn = c ? c->nkeep + c->ghost : 1;
  if (n_old % C)
    return kvi_fail(KVI_ERR_SHAPE, "compress: %d inputs are not a multiple of %d channels", n_old,
                    C);
  int P = n_old / C;
  T->n_old = n_old;
  T->n_new = P * Cn;
  T->ptr = malloc(((size_t)T->n_new + 1) * sizeof *T->ptr);
  T->src = malloc((size_t)n_old * sizeof *T->src);
  T->coef = malloc((size_t)n_old * sizeof *T->coef);
  if (!T->ptr || !T->src || !T->coef) {
    kvi__rowmap_free(T);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  }
  int e = 0, r = 0;
  for (int t = 0; t < P; t++) {
    if (!c) {
      T->ptr[r++] = e;
      T->src[e] = t, T->coef[e++] = 1.0;
      continue;
    }
    for (int j = 0; j < c->nkeep; j++) {
      T->ptr[r++] = e;
      T->src[e] = t * C + c->keep[j], T->coef[e++] = 1.0;
    }
    if (c->ghost) {
      T->ptr[r++] = e;
      for (int j = 0; j < C; j++)
        if (c->v[j] != 0) T->src[e] = t * C + j, T->coef[e++] = c->v[j];
    }
  }
  T->ptr[r] = e;
  T->identity = !c || (c->nkeep == C && !c->ghost);
  return KVI_OK;
}

/* Pruned means (n, m) in double: M with the entries of log alpha > thr set to zero. */
static kvi_status kvi__pruned_means(double **out, const kvi_params *p, const kvi_dense *l,
                                    double thr) {
  size_t nm = (size_t)l->n * l->m;
  double *pm = malloc(nm * sizeof *pm);
  kvi_real *la = kvi_alloc(nm * sizeof *la);
  kvi_status s = !pm || !la ? kvi_fail(KVI_ERR_NOMEM, "out of memory") : KVI_OK;
  if (!s) s = kvi_dense_log_alpha(la, p, l);
  if (!s) {
    const kvi_real *M = kvi_params_data(p, l->iM);
    for (size_t i = 0; i < nm; i++) pm[i] = la[i] > thr ? 0.0 : (double)M[i];
  }
  kvi_free(la);
  if (s) free(pm), pm = NULL;
  *out = pm;
  return s;
}

/* Decides L's channels from L's pruned means pm (n, m), its bias, the activation after it, and
 * L+1's pruned means pm1 (n1, m1) on the columns with keep1[c] != 0. */
static void kvi__decide(kvi__chan *c, const kvi_dense *l, const double *pm, const kvi_real *bias,
                        kvi_act act, const kvi_dense *l1, const double *pm1, const char *keep1) {
  const int n = l->n, m = l->m, n1 = l1->n, m1 = l1->m;
  c->m = m, c->nkeep = 0, c->ghost = 0, c->merged = 0, c->forced = 0;
  for (int j = 0; j < m; j++) {
    c->v[j] = 0;
    bool colzero = true, rowzero = true;
    for (int i = 0; i < n && colzero; i++) colzero = pm[(size_t)i * m + j] == 0;
    for (int r = j; r < n1 && rowzero; r += m)
      for (int k = 0; k < m1 && rowzero; k++)
        if (keep1[k]) rowzero = pm1[(size_t)r * m1 + k] == 0;
    kvi_real x = bias ? bias[j] : 0, y = 0;
    kvi_act_forward(&y, &x, 1, act);
    if (!colzero && !rowzero) {
      c->keep[c->nkeep++] = j;
    } else if (colzero && !rowzero && y != 0) {
      if (bias) {
        c->v[j] = (double)y, c->ghost = 1, c->merged++;
      } else {
        c->keep[c->nkeep++] = j; /* a constant without a bias to carry it: keep the unit */
      }
    }
  }
  if (c->nkeep == 0 && !c->ghost) { /* every unit is removable: keep one (exact) */
    c->keep[c->nkeep++] = 0;
    c->forced = 1;
  }
}

/* Stores the lower Cholesky factor of the SPD matrix U (k, k) (lower triangle used; destroyed)
 * into parameter storage P (strict lower as is, diagonal as log). Adds a relative jitter only if
 * the factorization fails; *jitter receives it (0 when none was needed). */
static kvi_status kvi__chol_store(kvi_real *P, double *U, int k, double *jitter) {
  size_t kk = (size_t)k * k;
  double *W = malloc(kk * sizeof *W);
  if (!W) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  double tr = 0;
  for (int i = 0; i < k; i++) tr += U[(size_t)i * k + i];
  tr = tr > 0 ? tr / k : 1.0;
  *jitter = 0;
  kvi_status s = KVI_ERR_LINALG;
  for (double eps = 0; s && eps <= 1e-6; eps = eps == 0 ? 1e-12 : eps * 10) {
    memcpy(W, U, kk * sizeof *W);
    for (int i = 0; i < k; i++) W[(size_t)i * k + i] += eps * tr;
    s = kvi_potrf_f64(k, W, k);
    if (!s) *jitter = eps;
  }
  if (s) {
    free(W);
    return kvi_fail(KVI_ERR_LINALG,
                    "compress: the new row covariance (%d x %d) is not positive "
                    "definite even with jitter",
                    k, k);
  }
  kvi_clear_error();
  for (int i = 0; i < k; i++)
    for (int j = 0; j < k; j++) {
      double x = W[(size_t)i * k + j];
      P[(size_t)i * k + j] = (kvi_real)(j < i ? x : j == i ? log(x) : 0.0);
    }
  free(W);
  return KVI_OK;
}

/* Materialized lower factor (k, k) in double from parameter storage. */
static void kvi__chol_get(double *L, const kvi_real *P, int k) {
  for (int i = 0; i < k; i++)
    for (int j = 0; j < k; j++) {
      double x = (double)P[(size_t)i * k + j];
      L[(size_t)i * k + j] = j < i ? x : j == i ? exp(x) : 0.0;
    }
}

/* A' = chol(T U T^T) with U = A A^T: R = T A (n', n), U' = R R^T. */
static kvi_status kvi__new_row_factor(kvi_real *Anew, const kvi_real *Aold, const kvi__rowmap *T,
                                      double *jitter) {
  const int n = T->n_old, nn = T->n_new;
  double *L = malloc((size_t)n * n * sizeof *L), *R = calloc((size_t)nn * n, sizeof *R),
         *U = malloc((size_t)nn * nn * sizeof *U);
  kvi_status s = !L || !R || !U ? kvi_fail(KVI_ERR_NOMEM, "out of memory") : KVI_OK;
  if (!s) {
    kvi__chol_get(L, Aold, n);
    for (int r = 0; r < nn; r++)
      for (int e = T->ptr[r]; e < T->ptr[r + 1]; e++) {
        const double *row = L + (size_t)T->src[e] * n;
        double a = T->coef[e];
        for (int k = 0; k <= T->src[e]; k++) R[(size_t)r * n + k] += a * row[k];
      }
    for (int r = 0; r < nn; r++)
      for (int q = 0; q <= r; q++) {
        double acc = 0;
        const double *x = R + (size_t)r * n, *y = R + (size_t)q * n;
        for (int k = 0; k < n; k++) acc += x[k] * y[k];
        U[(size_t)r * nn + q] = U[(size_t)q * nn + r] = acc;
      }
    s = kvi__chol_store(Anew, U, nn, jitter);
  }
  free(L), free(R), free(U);
  return s;
}

/* B' = chol(V[J,J] (+) ghost variance) with V = B B^T. */
static kvi_status kvi__new_col_factor(kvi_real *Bnew, const kvi_real *Bold, int m, const int *csrc,
                                      int mn, double *jitter) {
  double *L = malloc((size_t)m * m * sizeof *L), *V = malloc((size_t)mn * mn * sizeof *V);
  kvi_status s = !L || !V ? kvi_fail(KVI_ERR_NOMEM, "out of memory") : KVI_OK;
  if (!s) {
    kvi__chol_get(L, Bold, m);
    for (int a = 0; a < mn; a++)
      for (int b = 0; b <= a; b++) {
        double acc = 0;
        if (csrc[a] < 0 || csrc[b] < 0) {
          acc = a == b ? KVI__GHOST_VAR : 0.0;
        } else {
          const double *x = L + (size_t)csrc[a] * m, *y = L + (size_t)csrc[b] * m;
          for (int k = 0; k < m; k++) acc += x[k] * y[k];
        }
        V[(size_t)a * mn + b] = V[(size_t)b * mn + a] = acc;
      }
    s = kvi__chol_store(Bnew, V, mn, jitter);
  }
  free(L), free(V);
  return s;
}

/* Fills the new layer nl of np from the old layer ol (pruned means pm), rows mapped by T and
 * columns selected by csrc (mn entries; -1 = the ghost unit). */
static kvi_status kvi__fill(kvi_params *np, const kvi_dense *nl, const kvi_params *op,
                            const kvi_dense *ol, const double *pm, const kvi__rowmap *T,
                            const int *csrc, int mn, bool col_identity, double *jitter) {
  const int m = ol->m, nn = T->n_new;
  if (nl->n != nn || nl->m != mn || nl->family != ol->family || nl->prior != ol->prior ||
      (nl->ib >= 0) != (ol->ib >= 0))
    return kvi_fail(KVI_ERR_STATE, "compress: layer %s rebuilt as %d x %d, expected %d x %d",
                    ol->name, nl->n, nl->m, nn, mn);
  kvi_real *M = kvi_params_data(np, nl->iM);
  for (int r = 0; r < nn; r++)
    for (int c = 0; c < mn; c++) {
      double acc = 0;
      if (csrc[c] >= 0)
        for (int e = T->ptr[r]; e < T->ptr[r + 1]; e++)
          acc += T->coef[e] * pm[(size_t)T->src[e] * m + csrc[c]];
      M[(size_t)r * mn + c] = (kvi_real)acc;
    }
  if (ol->ib >= 0) {
    const kvi_real *b = kvi_params_data(op, ol->ib);
    kvi_real *bn = kvi_params_data(np, nl->ib);
    for (int c = 0; c < mn; c++) bn[c] = csrc[c] >= 0 ? b[csrc[c]] : (kvi_real)1;
  }
  if (ol->itau >= 0) {
    const kvi_real *lt = kvi_params_data(op, ol->itau), *lg = kvi_params_data(op, ol->igamma);
    kvi_real *ltn = kvi_params_data(np, nl->itau), *lgn = kvi_params_data(np, nl->igamma);
    for (int r = 0; r < nn; r++)
      ltn[r] = T->ptr[r + 1] - T->ptr[r] == 1 && T->coef[T->ptr[r]] == 1.0 ? lt[T->src[T->ptr[r]]]
                                                                           : (kvi_real)0;
    for (int c = 0; c < mn; c++) lgn[c] = csrc[c] >= 0 ? lg[csrc[c]] : (kvi_real)0;
  }
  if (ol->ilogv >= 0) kvi_params_data(np, nl->ilogv)[0] = kvi_params_data(op, ol->ilogv)[0];
  if (ol->iS >= 0) { /* DIAG: log sigma; MN+DIAG: log variance of the diagonal part */
    const double f = ol->family == KVI_FAMILY_DIAG ? 2.0 : 1.0;
    const kvi_real *S = kvi_params_data(op, ol->iS);
    kvi_real *Sn = kvi_params_data(np, nl->iS);
    for (int r = 0; r < nn; r++)
      for (int c = 0; c < mn; c++) {
        double var = KVI__GHOST_VAR;
        const int e0 = T->ptr[r];
        if (csrc[c] >= 0 && T->ptr[r + 1] - e0 == 1 && T->coef[e0] == 1.0) { /* a copy */
          Sn[(size_t)r * mn + c] = S[(size_t)T->src[e0] * m + csrc[c]];
          continue;
        }
        if (csrc[c] >= 0) {
          var = 0;
          for (int e = T->ptr[r]; e < T->ptr[r + 1]; e++)
            var += T->coef[e] * T->coef[e] * exp(f * (double)S[(size_t)T->src[e] * m + csrc[c]]);
        }
        Sn[(size_t)r * mn + c] = (kvi_real)(log(var) / f);
      }
  }
  double j1 = 0, j2 = 0;
  kvi_status s = KVI_OK;
  if (ol->iA >= 0) {
    const kvi_real *A = kvi_params_data(op, ol->iA), *B = kvi_params_data(op, ol->iB);
    kvi_real *An = kvi_params_data(np, nl->iA), *Bn = kvi_params_data(np, nl->iB);
    if (T->identity)
      memcpy(An, A, (size_t)nn * nn * sizeof *A);
    else
      s = kvi__new_row_factor(An, A, T, &j1);
    if (!s && col_identity)
      memcpy(Bn, B, (size_t)mn * mn * sizeof *B);
    else if (!s)
      s = kvi__new_col_factor(Bn, B, m, csrc, mn, &j2);
  }
  *jitter = j1 > j2 ? j1 : j2;
  return s;
}

/* Writes arch with the output counts of the weight layers replaced by counts[0..nd). */
static kvi_status kvi__new_arch(char *out, size_t cap, const char *arch, const int *counts,
                                int nd) {
  size_t len = 0;
  int k = 0, ntok = 0;
  const char *s = arch;
  out[0] = 0;
  while (true) {
    const char *e = strchr(s, '-');
    size_t tl = e ? (size_t)(e - s) : strlen(s);
    char t[64], piece[80];
    size_t j = 0;
    for (size_t i = 0; i < tl && j + 1 < sizeof t; i++)
      if (s[i] != '(' && s[i] != ')') t[j++] = s[i];
    t[j] = 0;
    if (ntok > 0 && t[0] >= '0' && t[0] <= '9') {
      const char *rest = t;
      while (*rest >= '0' && *rest <= '9') rest++;
      if (k >= nd) return kvi_fail(KVI_ERR_STATE, "compress: '%s' has too many layers", arch);
      snprintf(piece, sizeof piece, "%d%s", counts[k++], rest);
    } else {
      snprintf(piece, sizeof piece, "%s", t);
    }
    int w = snprintf(out + len, cap - len, "%s%s", ntok ? "-" : "", piece);
    if (w < 0 || (size_t)w >= cap - len)
      return kvi_fail(KVI_ERR_ARG, "compress: architecture string of '%s' too long", arch);
    len += (size_t)w;
    ntok++;
    if (!e) break;
    s = e + 1;
  }
  if (k != nd)
    return kvi_fail(KVI_ERR_STATE, "compress: '%s' has %d sizes, %d layers", arch, k, nd);
  return KVI_OK;
}

/* Appends "<name>: <msg>" (with a jitter value when > 0) to info->note. */
static void kvi__note(kvi_compress_info *info, const char *name, const char *msg, double x) {
  size_t len = strlen(info->note);
  if (len + 1 >= sizeof info->note) return;
  if (x > 0)
    snprintf(info->note + len, sizeof info->note - len, "%s%s: %s %g", len ? "; " : "", name, msg,
             x);
  else
    snprintf(info->note + len, sizeof info->note - len, "%s%s: %s", len ? "; " : "", name, msg);
}

kvi_status kvi_net_compress(kvi_net **out, kvi_compress_info *info, const kvi_net *net,
                            double threshold) {
  if (!out || !info || !net) return kvi_fail(KVI_ERR_ARG, "net_compress: NULL argument");
  *out = NULL;
  memset(info, 0, sizeof *info);
  if (isnan(threshold))
    return kvi_fail(KVI_ERR_ARG, "net_compress: the log alpha threshold is NaN");
  for (int i = 0; i < net->nlayers; i++) { /* other kinds' parameters are not carried over */
    const kvi_layer_ops *o = net->layers[i].ops;
    if (o != &kvi_dense_ops && o != &kvi_conv_ops && o != &kvi_pool_ops && o != &kvi_act_ops &&
        o != &kvi_flatten_ops)
      return kvi_fail(KVI_ERR_UNSUPPORTED, "net_compress: layer kind '%s' is not supported",
                      o->kind);
  }
  kvi_net *nc = (kvi_net *)net; /* kvi_net_dense is not const; nothing is modified */
  int nd = 0;
  kvi_net_dense(nc, 0, &nd);
  if (nd < 1 || nd > KVI__MAX_WL)
    return kvi_fail(KVI_ERR_UNSUPPORTED, "net_compress: %d weight layers (1 to %d supported)", nd,
                    KVI__MAX_WL);
  const kvi_dense *ol[KVI__MAX_WL];
  double *pm[KVI__MAX_WL] = {0};
  kvi__chan ch[KVI__MAX_WL];
  memset(ch, 0, sizeof ch);
  int counts[KVI__MAX_WL];
  char *keep1 = NULL;
  kvi_net *small = NULL;
  kvi_status s = KVI_OK;
  int maxm = 1;
  for (int k = 0; k < nd && !s; k++) {
    ol[k] = kvi_net_dense(nc, k, NULL);
    maxm = ol[k]->m > maxm ? ol[k]->m : maxm;
    s = kvi__pruned_means(&pm[k], net->params, ol[k], threshold);
    ch[k].keep = malloc((size_t)ol[k]->m * sizeof(int));
    ch[k].v = calloc((size_t)ol[k]->m, sizeof(double));
    if (!s && (!ch[k].keep || !ch[k].v)) s = kvi_fail(KVI_ERR_NOMEM, "out of memory");
  }
  if (!s && !(keep1 = malloc((size_t)maxm))) s = kvi_fail(KVI_ERR_NOMEM, "out of memory");
  if (!s) { /* the classes are kept; then backwards, each layer knowing the next one's columns */
    kvi__chan *last = &ch[nd - 1];
    last->m = last->nkeep = ol[nd - 1]->m;
    for (int j = 0; j < last->m; j++) last->keep[j] = j;
    for (int k = nd - 2; k >= 0; k--) {
      const kvi__chan *c1 = &ch[k + 1];
      /* a unit kept only because all were removable contributes nothing: no column needed */
      memset(keep1, 0, (size_t)c1->m);
      for (int j = 0; j < c1->nkeep && !c1->forced; j++) keep1[c1->keep[j]] = 1;
      int li = kvi_net_weight_layer(net, k) + 1;
      if (li < net->nlayers && net->layers[li].ops == &kvi_pool_ops) li++; /* pool, then act */
      kvi_act act = li < net->nlayers && net->layers[li].ops == &kvi_act_ops
                        ? *(const kvi_act *)net->layers[li].state
                        : KVI_ACT_NONE;
      const kvi_real *bias = ol[k]->ib >= 0 ? kvi_params_data(net->params, ol[k]->ib) : NULL;
      kvi__decide(&ch[k], ol[k], pm[k], bias, act, ol[k + 1], pm[k + 1], keep1);
    }
    for (int k = 0; k < nd; k++) counts[k] = ch[k].nkeep + ch[k].ghost;
    snprintf(info->arch_before, sizeof info->arch_before, "%s", net->arch);
    s = kvi__new_arch(info->arch_after, sizeof info->arch_after, net->arch, counts, nd);
  }
  if (!s) {
    s = kvi_net_create(&small, info->arch_after, net->in_size, &net->cfg, net->max_batch, 1);
    if (s) s = kvi_fail(s, "compress: cannot build '%s': %s", info->arch_after, kvi_last_error());
  }
  for (int k = 0; k < nd && !s; k++) {
    kvi__rowmap T;
    s = kvi__rowmap_build(&T, ol[k]->n, k > 0 ? &ch[k - 1] : NULL);
    if (s) break;
    int mn = counts[k];
    int *csrc = malloc((size_t)mn * sizeof *csrc);
    if (!csrc) {
      kvi__rowmap_free(&T);
      s = kvi_fail(KVI_ERR_NOMEM, "out of memory");
      break;
    }
    for (int j = 0; j < mn; j++) csrc[j] = j < ch[k].nkeep ? ch[k].keep[j] : -1;
    const kvi_dense *nl = kvi_net_dense(small, k, NULL);
    double jit = 0;
    bool col_id = ch[k].nkeep == ol[k]->m && !ch[k].ghost;
    s = kvi__fill(small->params, nl, net->params, ol[k], pm[k], &T, csrc, mn, col_id, &jit);
    kvi_compress_layer *cl = &info->layer[k];
    snprintf(cl->name, sizeof cl->name, "%s", ol[k]->name);
    cl->n_before = ol[k]->n, cl->n_after = nl->n;
    cl->units_before = ol[k]->m, cl->units_after = nl->m;
    cl->ghost = ch[k].ghost, cl->merged = ch[k].merged, cl->forced = ch[k].forced;
    cl->weights_before = (int64_t)ol[k]->n * ol[k]->m;
    cl->weights_after = (int64_t)nl->n * nl->m;
    cl->params_before = kvi_dense_param_count(ol[k]);
    cl->params_after = kvi_dense_param_count(nl);
    cl->jitter = jit;
    info->weights_before += cl->weights_before, info->weights_after += cl->weights_after;
    if (ch[k].forced) kvi__note(info, cl->name, "every unit was removable, one kept", 0);
    if (jit > 0)
      kvi__note(info, cl->name, "Cholesky of the new covariance needed a relative jitter", jit);
    kvi__rowmap_free(&T);
    free(csrc);
  }
  if (!s) {
    info->nlayers = nd;
    info->params_before = kvi_net_param_count(net);
    info->params_after = kvi_net_param_count(small);
    kvi_net_set_log_beta(small, kvi_net_log_beta(net));
    *out = small;
    small = NULL;
  }
  kvi_net_free(small);
  for (int k = 0; k < nd; k++) free(pm[k]), free(ch[k].keep), free(ch[k].v);
  free(keep1);
  return s;
}
