/* Models: several networks declared over one parameter block, then allocated together. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/models_internal.h"

kvi_status kvi_model_create(kvi_model **out) {
  if (!out) return kvi_fail(KVI_ERR_ARG, "model_create: NULL argument");
  *out = calloc(1, sizeof **out);
  if (!*out) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  kvi_params_init(&(*out)->params);
  return KVI_OK;
}

kvi_status kvi_model_add_net_over(kvi_model *m, kvi_net **net, const char *name,
                                  const char *params_of, const char *arch, int in_size,
                                  const kvi_net_config *cfg, int max_batch) {
  if (!m || !name || !params_of) return kvi_fail(KVI_ERR_ARG, "model_add_net: NULL argument");
  if (m->ready) return kvi_fail(KVI_ERR_STATE, "model_add_net('%s') after model_finish", name);
  if (m->nnets == KVI_MODEL_MAX_NETS)
    return kvi_fail(KVI_ERR_ARG, "a model holds at most %d nets", KVI_MODEL_MAX_NETS);
  if (strlen(name) >= sizeof m->nets[0]->id || strchr(name, '.'))
    return kvi_fail(KVI_ERR_ARG, "net name '%s': at most 15 characters, no '.'", name);
  if (kvi_model_net(m, name))
    return kvi_fail(KVI_ERR_ARG, "the model already has a net named '%s'", name);
  if (strcmp(params_of, name) && !kvi_model_net(m, params_of))
    return kvi_fail(KVI_ERR_ARG, "net '%s': no net '%s' to share parameters with", name, params_of);
  char prefix[32];
  snprintf(prefix, sizeof prefix, "%s%s", params_of, params_of[0] ? "." : "");
  kvi_net *n = NULL;
  const int nviews = m->params.nviews;
  const size_t nparams = m->params.n;
  kvi_status s = kvi__net_declare(&n, &m->params, prefix, arch, in_size, cfg, max_batch);
  if (s) { /* the views a failed net declared are dropped with it */
    m->params.nviews = nviews, m->params.n = nparams;
    return kvi_fail(s, "net '%s': %s", name, kvi_last_error());
  }
  snprintf(n->id, sizeof n->id, "%s", name);
  m->nets[m->nnets++] = n;
  if (net) *net = n;
  return KVI_OK;
}

kvi_status kvi_model_add_net(kvi_model *m, kvi_net **net, const char *name, const char *arch,
                             int in_size, const kvi_net_config *cfg, int max_batch) {
  return kvi_model_add_net_over(m, net, name, name ? name : "", arch, in_size, cfg, max_batch);
}

kvi_status kvi_model_finish(kvi_model *m, uint64_t seed) {
  if (!m || m->ready || m->nnets == 0)
    return kvi_fail(KVI_ERR_STATE, "model_finish: no nets, or finished already");
  kvi_status s = kvi_params_alloc(&m->params);
  for (int k = 0; k < m->nnets && !s; k++) s = kvi__net_finish(m->nets[k], seed, (uint64_t)k);
  m->ready = !s;
  return s;
}

kvi_net *kvi_model_net(const kvi_model *m, const char *name) {
  for (int k = 0; m && name && k < m->nnets; k++)
    if (!strcmp(m->nets[k]->id, name)) return m->nets[k];
  return NULL;
}

void kvi_model_free(kvi_model *m) {
  if (!m) return;
  for (int k = 0; k < m->nnets; k++) kvi_net_free(m->nets[k]);
  kvi_params_free(&m->params);
  free(m);
}
