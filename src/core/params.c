/* Flat parameter/gradient buffers with a table of named views. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/core.h"

void kvi_params_init(kvi_params *p) { memset(p, 0, sizeof *p); }

kvi_status kvi_params_add(kvi_params *p, const char *name, kvi_role role, int ndim,
                          const int64_t *shape, int *index) {
  if (!p || !name || !shape || ndim < 1 || ndim > KVI_MAX_DIMS)
    return kvi_fail(KVI_ERR_ARG, "params_add: bad arguments for '%s'", name ? name : "(null)");
  if (p->data) return kvi_fail(KVI_ERR_STATE, "params_add('%s') after params_alloc", name);
  if (strlen(name) >= KVI_MAX_NAME)
    return kvi_fail(KVI_ERR_ARG, "parameter name '%s' longer than %d", name, KVI_MAX_NAME - 1);
  if (kvi_params_find(p, name) >= 0)
    return kvi_fail(KVI_ERR_ARG, "duplicate parameter name '%s'", name);
  size_t size = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] <= 0 || shape[i] > (int64_t)1 << 40)
      return kvi_fail(KVI_ERR_ARG, "parameter '%s': bad dimension %lld", name, (long long)shape[i]);
    size *= (size_t)shape[i];
  }
  if (p->nviews == p->cap) {
    int nc = p->cap ? p->cap * 2 : 16;
    kvi_view *v = realloc(p->views, (size_t)nc * sizeof *v);
    if (!v) return kvi_fail(KVI_ERR_NOMEM, "out of memory adding parameter '%s'", name);
    p->views = v;
    p->cap = nc;
  }
  kvi_view *v = &p->views[p->nviews];
  memset(v, 0, sizeof *v);
  snprintf(v->name, sizeof v->name, "%s", name);
  v->ndim = ndim;
  for (int i = 0; i < ndim; i++) v->shape[i] = shape[i];
  /* keep every view 64-byte aligned (16 floats / 8 doubles) */
  size_t align = 64 / sizeof(kvi_real);
  v->offset = (p->n + align - 1) / align * align;
  v->size = size;
  v->role = role;
  p->n = v->offset + size;
  if (index) *index = p->nviews;
  p->nviews++;
  return KVI_OK;
}

kvi_status kvi_params_alloc(kvi_params *p) {
  if (p->data) return kvi_fail(KVI_ERR_STATE, "params already allocated");
  p->data = kvi_alloc(p->n * sizeof(kvi_real));
  p->grad = kvi_alloc(p->n * sizeof(kvi_real));
  if (!p->data || !p->grad) {
    kvi_free(p->data);
    kvi_free(p->grad);
    p->data = p->grad = NULL;
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for %zu parameters", p->n);
  }
  return KVI_OK;
}

void kvi_params_free(kvi_params *p) {
  if (!p) return;
  kvi_free(p->data);
  kvi_free(p->grad);
  free(p->views);
  memset(p, 0, sizeof *p);
}

kvi_real *kvi_params_data(const kvi_params *p, int index) {
  KVI_ASSERT(p && index >= 0 && index < p->nviews);
  return p->data + p->views[index].offset;
}

kvi_real *kvi_params_grad(const kvi_params *p, int index) {
  KVI_ASSERT(p && index >= 0 && index < p->nviews);
  return p->grad + p->views[index].offset;
}

int kvi_params_find(const kvi_params *p, const char *name) {
  for (int i = 0; i < p->nviews; i++)
    if (strcmp(p->views[i].name, name) == 0) return i;
  return -1;
}

void kvi_params_zero_grad(kvi_params *p) {
  if (!p->grad) return;
  const size_t ch = (size_t)1 << 16, nch = (p->n + ch - 1) / ch;
#pragma omp parallel for schedule(static) if (nch > 4)
  for (size_t c = 0; c < nch; c++)
    memset(p->grad + c * ch, 0, (p->n - c * ch < ch ? p->n - c * ch : ch) * sizeof(kvi_real));
}
