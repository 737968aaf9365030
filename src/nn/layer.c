/* The registry of layer kinds and the helpers shared by weight layers (kronvi/layer.h). */
#include <string.h>

#include "kronvi/layer.h"

/* Built-in kinds, in match order. A new kind adds one line here. */
static const kvi_layer_ops *const kvi__builtin[] = {
    &kvi_dense_ops, &kvi_conv_ops, &kvi_pool_ops, &kvi_act_ops, &kvi_flatten_ops,
};

#define KVI__NBUILTIN (int)(sizeof kvi__builtin / sizeof kvi__builtin[0])
#define KVI__MAX_EXTRA 16

static const kvi_layer_ops *kvi__kinds[KVI__MAX_EXTRA + KVI__NBUILTIN];
static int kvi__nextra = -1; /* -1: the table is not filled yet */

static void kvi__fill(void) {
  if (kvi__nextra >= 0) return;
  kvi__nextra = 0;
  for (int i = 0; i < KVI__NBUILTIN; i++) kvi__kinds[i] = kvi__builtin[i];
}

const kvi_layer_ops *const *kvi_layer_kinds(int *count) {
  kvi__fill();
  if (count) *count = kvi__nextra + KVI__NBUILTIN;
  return kvi__kinds;
}

kvi_status kvi_layer_register(const kvi_layer_ops *ops) {
  if (!ops || !ops->kind || !ops->match || !ops->create || !ops->forward || !ops->backward)
    return kvi_fail(KVI_ERR_ARG,
                    "layer_register: a kind needs kind, match, create, forward and "
                    "backward");
  kvi__fill();
  int n = kvi__nextra + KVI__NBUILTIN;
  for (int i = 0; i < n; i++)
    if (kvi__kinds[i] == ops || !strcmp(kvi__kinds[i]->kind, ops->kind))
      return kvi_fail(KVI_ERR_ARG, "layer kind '%s' is already registered", ops->kind);
  if (kvi__nextra == KVI__MAX_EXTRA)
    return kvi_fail(KVI_ERR_ARG, "more than %d registered layer kinds", KVI__MAX_EXTRA);
  memmove(kvi__kinds + 1, kvi__kinds, (size_t)n * sizeof *kvi__kinds); /* ahead of built-ins */
  kvi__kinds[0] = ops;
  kvi__nextra++;
  return KVI_OK;
}

const kvi_layer_ops *kvi_layer_kind_for(const char *token, const kvi_shape *in) {
  int n = 0;
  const kvi_layer_ops *const *k = kvi_layer_kinds(&n);
  for (int i = 0; i < n; i++)
    if (k[i]->match && k[i]->match(token, in)) return k[i];
  return NULL;
}

kvi_status kvi_layer_weights_kl(const kvi_layer *L, kvi_params *p, double *kl, kvi_real gscale) {
  return kvi_dense_kl(kl, p, L->ops->weights(L), gscale);
}

kvi_status kvi_layer_capture(const kvi_layer *L, const kvi_layer_call *c, const kvi_real *in,
                             const kvi_real *grad_out, int rows) {
  if (!c->observer) return KVI_OK;
  const kvi_dense *d = L->ops->weights(L);
  kvi_capture_rows r = {L->name,
                        c->weight,
                        c->batch,
                        rows,
                        d->n,
                        d->m,
                        d->bias,
                        c->eps != NULL,
                        in,
                        grad_out,
                        c->batch_total > 0 ? c->batch_total : c->batch};
  return c->observer(c->observer_user, &r);
}

void kvi_capture_accumulate(kvi_real *A, kvi_real *G, const kvi_capture_rows *r, kvi_real scale) {
  const int n = r->n, na = r->n + (r->bias ? 1 : 0);
  if (A) {
    kvi_syrk(true, n, r->rows, scale, r->in, n, 1, A, na); /* lower triangle of a^T a */
    if (r->bias) {                                         /* last row: 1^T a, corner: rows */
      for (int j = 0; j < n; j++) {
        double s = 0;
        for (int i = 0; i < r->rows; i++) s += r->in[(size_t)i * n + j];
        A[(size_t)n * na + j] += (kvi_real)(scale * s);
      }
      A[(size_t)n * na + n] += scale * (kvi_real)r->rows;
    }
    for (int i = 0; i < na; i++) /* mirror into the upper triangle */
      for (int j = i + 1; j < na; j++) A[(size_t)i * na + j] = A[(size_t)j * na + i];
  }
  if (G) {
    kvi_syrk(true, r->m, r->rows, scale, r->grad_out, r->m, 1, G, r->m);
    for (int i = 0; i < r->m; i++)
      for (int j = i + 1; j < r->m; j++) G[(size_t)i * r->m + j] = G[(size_t)j * r->m + i];
  }
}
