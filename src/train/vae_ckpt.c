/* VAE checkpoints (docs/io.md, docs/vae.md): the safetensors container of the classifier
 * checkpoints with one tensor per parameter view, every optimizer state tensor, the best
 * parameters as "best.<view>", and a "kronvi" metadata document whose "vae" object (instead of
 * "model") describes the encoder and decoder. Every field is range-checked on reading. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/ckpt_internal.h"

static void kvi__vae_json(kvi_json_buf *jb, const kvi_vae *v) {
  const kvi_vae_config *c = &v->cfg;
  kvi_jb_kv_str(jb, "family", kvi_vae_family_name(c->head.family));
  kvi_jb_kv_int(jb, "latent", c->head.d);
  kvi_jb_kv_int(jb, "p", c->head.p);
  kvi_jb_kv_int(jb, "q", c->head.q);
  kvi_jb_kv_int(jb, "in_size", c->in_size);
  kvi_jb_kv_int(jb, "in_h", c->in_h);
  kvi_jb_kv_int(jb, "in_w", c->in_w);
  kvi_jb_kv_int(jb, "hidden", c->hidden);
  kvi_jb_kv_int(jb, "layers", c->layers);
  kvi_jb_kv_str(jb, "act", kvi_act_name(c->act));
  kvi_jb_kv_str(jb, "likelihood", "bernoulli");
  kvi_jb_kv_str(jb, "enc_arch", v->enc->arch); /* for readers; rebuilt from the fields above */
  kvi_jb_kv_str(jb, "dec_arch", v->dec->arch);
}

static void kvi__vae_train_json(kvi_json_buf *jb, const kvi_vae_train_config *c) {
  kvi_jb_kv_int(jb, "epochs", c->epochs);
  kvi_jb_kv_int(jb, "batch", c->batch);
  kvi__ckpt_opt_json(jb, &c->opt);
  kvi_jb_kv_num(jb, "kl_anneal", c->kl_anneal);
  kvi_jb_kv_int(jb, "patience", c->patience);
  char seed[24];
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
  kvi_jb_kv_str(jb, "seed", seed);
}

static char *kvi__vae_meta(const kvi_vae_trainer *t) {
  kvi_json_buf jb;
  kvi_jb_init(&jb, false);
  kvi_jb_begin_object(&jb);
  kvi_jb_kv_int(&jb, "version", KVI_CKPT_VERSION);
  kvi_jb_kv_str(&jb, "precision", KVI_REAL_NAME);
  kvi_jb_key(&jb, "vae");
  kvi_jb_begin_object(&jb);
  kvi__vae_json(&jb, t->vae);
  kvi_jb_end_object(&jb);
  kvi_jb_key(&jb, "train");
  kvi_jb_begin_object(&jb);
  kvi__vae_train_json(&jb, &t->cfg);
  kvi_jb_end_object(&jb);
  kvi_jb_key(&jb, "data");
  kvi_jb_begin_object(&jb);
  kvi_jb_kv_int(&jb, "limit_train", t->limit_train);
  kvi_jb_kv_int(&jb, "limit_test", t->limit_test);
  kvi_jb_kv_int(&jb, "val", t->val);
  kvi_jb_end_object(&jb);
  kvi_jb_key(&jb, "state");
  kvi_jb_begin_object(&jb);
  kvi_jb_kv_int(&jb, "epoch", t->epoch);
  kvi_jb_kv_int(&jb, "step", t->step);
  kvi_jb_kv_int(&jb, "optimizer_t", t->opt.t);
  kvi_jb_kv_num(&jb, "best_val", t->best_val);
  kvi_jb_kv_int(&jb, "best_epoch", t->best_epoch);
  kvi_jb_kv_int(&jb, "bad_epochs", t->bad_epochs);
  kvi_jb_kv_num(&jb, "elapsed", t->elapsed);
  kvi_jb_kv_bool(&jb, "best", t->best != NULL);
  kvi_jb_end_object(&jb);
  kvi_jb_end_object(&jb);
  char *s = NULL;
  return kvi_jb_take(&jb, &s, NULL) == KVI_OK ? s : NULL;
}

kvi_status kvi_vae_checkpoint_save(const char *path, const kvi_vae_trainer *t) {
  if (!path || !t || !t->vae) return kvi_fail(KVI_ERR_ARG, "vae_checkpoint_save: NULL argument");
  const kvi_params *p = &t->vae->model->params;
  const char *dt = sizeof(kvi_real) == 8 ? "F64" : "F32";
  const int nv = p->nviews, nt = 2 * nv + t->opt.nstate;
  kvi_st_tensor *ts = calloc((size_t)nt, sizeof *ts);
  char(*best)[KVI_MAX_NAME + 8] = t->best ? calloc((size_t)nv, sizeof *best) : NULL;
  char *meta = kvi__vae_meta(t);
  if (!ts || !meta || (t->best && !best)) {
    free(ts), free(best), free(meta);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory writing checkpoint");
  }
  int k = 0;
  for (int i = 0; i < nv; i++, k++) { /* the parameters, then the best ones */
    const kvi_view *v = &p->views[i];
    ts[k] = (kvi_st_tensor){.name = v->name, .dtype = dt, .ndim = v->ndim};
    for (int d = 0; d < v->ndim; d++) ts[k].shape[d] = v->shape[d];
    ts[k].data = p->data + v->offset;
  }
  for (int i = 0; best && i < nv; i++, k++) {
    snprintf(best[i], sizeof best[i], "best.%s", p->views[i].name);
    ts[k] = ts[i];
    ts[k].name = best[i];
    ts[k].data = t->best + p->views[i].offset;
  }
  for (int i = 0; i < t->opt.nstate; i++, k++) {
    const kvi_opt_state *st = &t->opt.state[i];
    ts[k] = (kvi_st_tensor){.name = st->name, .dtype = dt, .ndim = st->ndim, .data = st->data};
    for (int d = 0; d < st->ndim; d++) ts[k].shape[d] = st->shape[d];
  }
  const char *keys[2] = {"format", "kronvi"};
  const char *vals[2] = {"kronvi-vae", meta};
  kvi_status s = kvi_safetensors_write(path, ts, k, keys, vals, 2);
  free(ts), free(best), free(meta);
  return s;
}

/* ---- loading ------------------------------------------------------------------------------ */
/* The "vae" object, every field in the command line's range. */
static kvi_status kvi__read_vae(kvi_vae_config *c, const kvi_json *o, const char *path) {
  *c = kvi_vae_config_default();
  int64_t v[8];
  const char *w = "vae";
  kvi_vae_family f;
  kvi_status s = kvi_vae_family_parse(&f, kvi_json_str(kvi_json_get(o, "family")));
  if (!s) s = kvi_act_parse(&c->act, kvi_json_str(kvi_json_get(o, "act")));
  if (s) return kvi_fail(KVI_ERR_FORMAT, "%s: %s", path, kvi_last_error());
  s = kvi__ckpt_int(&v[0], o, w, "latent", 1, KVI_VAE_MAX_LATENT, path);
  if (!s) s = kvi__ckpt_int(&v[1], o, w, "p", 1, KVI_VAE_MAX_LATENT, path);
  if (!s) s = kvi__ckpt_int(&v[2], o, w, "q", 1, KVI_VAE_MAX_LATENT, path);
  if (!s) s = kvi__ckpt_int(&v[3], o, w, "in_size", 1, 1000000, path);
  if (!s) s = kvi__ckpt_int(&v[4], o, w, "in_h", 0, 65536, path);
  if (!s) s = kvi__ckpt_int(&v[5], o, w, "in_w", 0, 65536, path);
  if (!s) s = kvi__ckpt_int(&v[6], o, w, "hidden", 1, 100000, path);
  if (!s) s = kvi__ckpt_int(&v[7], o, w, "layers", 0, 16, path);
  if (s) return s;
  if ((s = kvi_vae_head_init(&c->head, f, (int)v[0], (int)v[1], (int)v[2])) != KVI_OK)
    return kvi_fail(KVI_ERR_FORMAT, "%s: %s", path, kvi_last_error());
  c->in_size = (int)v[3], c->in_h = (int)v[4], c->in_w = (int)v[5];
  c->hidden = (int)v[6], c->layers = (int)v[7];
  return KVI_OK;
}

static kvi_status kvi__read_vae_train(kvi_vae_train_config *c, const kvi_json *o,
                                      const char *path) {
  *c = kvi_vae_train_config_default();
  kvi_opt_kind ok;
  if (kvi_opt_parse(&ok, kvi_json_str(kvi_json_get(o, "optimizer"))))
    return kvi_fail(KVI_ERR_FORMAT, "%s: %s", path, kvi_last_error());
  c->opt = kvi_opt_config_default(ok);
  int64_t v[3];
  const char *w = "train";
  kvi_status s = kvi__ckpt_int(&v[0], o, w, "epochs", 0, 1000000, path);
  if (!s) s = kvi__ckpt_int(&v[1], o, w, "batch", 1, 100000, path);
  if (!s) s = kvi__ckpt_int(&v[2], o, w, "patience", 0, 1000000, path);
  if (!s) s = kvi__ckpt_num(&c->opt.lr, o, w, "lr", 1e-12, 1e3, path);
  if (!s) s = kvi__ckpt_num(&c->opt.beta1, o, w, "beta1", 0, 0.999999, path);
  if (!s) s = kvi__ckpt_num(&c->opt.beta2, o, w, "beta2", 0, 0.999999999, path);
  if (!s) s = kvi__ckpt_num(&c->opt.eps, o, w, "adam_eps", 1e-300, 1, path);
  if (!s) s = kvi__ckpt_num(&c->opt.momentum, o, w, "momentum", 0, 0.9999, path);
  if (!s) s = kvi__ckpt_num(&c->opt.weight_decay, o, w, "weight_decay", 0, 1e3, path);
  if (!s) s = kvi__ckpt_num(&c->kl_anneal, o, w, "kl_anneal", 0, 1e6, path);
  if (!s) s = kvi__ckpt_seed(&c->seed, o, w, "seed", path);
  if (s) return s;
  c->epochs = (int)v[0], c->batch = (int)v[1], c->patience = (int)v[2];
  c->opt.nesterov = kvi_json_bool(kvi_json_get(o, "nesterov"));
  return KVI_OK;
}

/* The trainer's counters and data preparation. */
static kvi_status kvi__read_vae_state(kvi_vae_trainer *t, const kvi_json *st, const kvi_json *data,
                                      const char *path) {
  int64_t v[8];
  kvi_status s = kvi__ckpt_int(&v[0], st, "state", "epoch", 0, 1000000, path);
  if (!s) s = kvi__ckpt_int(&v[1], st, "state", "step", 0, (int64_t)1 << 50, path);
  if (!s) s = kvi__ckpt_int(&v[2], st, "state", "optimizer_t", 0, (int64_t)1 << 50, path);
  if (!s) s = kvi__ckpt_int(&v[3], st, "state", "best_epoch", 0, 1000000, path);
  if (!s) s = kvi__ckpt_int(&v[4], st, "state", "bad_epochs", 0, 1000000, path);
  if (!s) s = kvi__ckpt_num(&t->best_val, st, "state", "best_val", -1e300, 1e300, path);
  if (!s) s = kvi__ckpt_num(&t->elapsed, st, "state", "elapsed", 0, 1e12, path);
  if (!s) s = kvi__ckpt_int(&v[5], data, "data", "limit_train", 0, 1000000000, path);
  if (!s) s = kvi__ckpt_int(&v[6], data, "data", "limit_test", 0, 1000000000, path);
  if (!s) s = kvi__ckpt_int(&v[7], data, "data", "val", 0, 100000000, path);
  if (s) return s;
  if (v[2] > v[1])
    return kvi_fail(KVI_ERR_FORMAT, "%s: 'state.optimizer_t' exceeds 'state.step'", path);
  t->epoch = (int)v[0], t->step = v[1], t->opt.t = v[2];
  t->best_epoch = (int)v[3], t->bad_epochs = (int)v[4];
  t->limit_train = v[5], t->limit_test = v[6], t->val = v[7];
  return KVI_OK;
}

/* Every view (prefix "" or "best.") of the block into dst. */
static kvi_status kvi__read_views(kvi_real *dst, const kvi_params *p, const kvi_st_file *f,
                                  const char *prefix, const char *path) {
  for (int i = 0; i < p->nviews; i++) {
    char name[KVI_MAX_NAME + 8];
    snprintf(name, sizeof name, "%s%s", prefix, p->views[i].name);
    kvi_status s = kvi_st_read_reals(dst + p->views[i].offset, p->views[i].size, f, name);
    if (s) return kvi_fail(s, "%s: %s", path, kvi_last_error());
  }
  return kvi_check_finite(dst, p->n, path);
}

/* What a file without a "vae" object is, for the message. */
static kvi_status kvi__not_vae(const kvi_json *root, const char *path) {
  const kvi_json *m = kvi_json_get(root, "model");
  if (m)
    return kvi_fail(
        KVI_ERR_FORMAT,
        "%s: a classifier checkpoint of 'kronvi train' (--arch %s), not a VAE "
        "(HINT: 'kronvi eval' evaluates it; 'kronvi vae train' makes a VAE)",
        path, kvi_json_str(kvi_json_get(m, "arch")) ? kvi_json_str(kvi_json_get(m, "arch")) : "?");
  if (kvi_json_get(root, "nets"))
    return kvi_fail(KVI_ERR_FORMAT, "%s: a model file of several nets, not a VAE checkpoint", path);
  return kvi_fail(KVI_ERR_FORMAT, "%s: not a VAE checkpoint (no 'vae' metadata)", path);
}

static kvi_status kvi__vae_restore(kvi_vae_trainer *t, kvi_vae *v, const kvi_vae_train_config *tc,
                                   const kvi__ckpt_file *c, bool has_best, const char *path) {
  kvi_status s = kvi_vae_trainer_init(t, v, tc);
  if (!s)
    s = kvi__read_vae_state(t, kvi_json_get(c->root, "state"), kvi_json_get(c->root, "data"), path);
  for (int i = 0; !s && i < t->opt.nstate; i++) {
    s = kvi_st_read_reals(t->opt.state[i].data, t->opt.state[i].size, c->f, t->opt.state[i].name);
    if (s) s = kvi_fail(s, "%s: optimizer state: %s", path, kvi_last_error());
  }
  const kvi_params *p = &v->model->params;
  if (!s && has_best && !(t->best = kvi_alloc(p->n * sizeof(kvi_real))))
    s = kvi_fail(KVI_ERR_NOMEM, "out of memory");
  if (!s && has_best) s = kvi__read_views(t->best, p, c->f, "best.", path);
  return s; /* on failure the caller frees t */
}

kvi_status kvi_vae_checkpoint_load(const char *path, kvi_vae **out, kvi_vae_trainer *t, bool best,
                                   bool *had_best) {
  if (!path || !out) return kvi_fail(KVI_ERR_ARG, "vae_checkpoint_load: NULL argument");
  *out = NULL;
  if (had_best) *had_best = false;
  if (t) memset(t, 0, sizeof *t); /* a failure before kvi_vae_trainer_init frees nothing of it */
  kvi__ckpt_file c;
  kvi_status s = kvi__ckpt_open(&c, path);
  if (s) return s;
  const kvi_json *vo = kvi_json_get(c.root, "vae"), *tr = kvi_json_get(c.root, "train");
  const kvi_json *st = kvi_json_get(c.root, "state");
  if (!vo) s = kvi__not_vae(c.root, path);
  if (!s && (!tr || !st || !kvi_json_get(c.root, "data")))
    s = kvi_fail(KVI_ERR_FORMAT, "%s: VAE checkpoint metadata lacks 'train', 'state' or 'data'",
                 path);
  kvi_vae_config vc;
  kvi_vae_train_config tc;
  if (!s) s = kvi__read_vae(&vc, vo, path);
  if (!s) s = kvi__read_vae_train(&tc, tr, path);
  kvi_vae *v = NULL;
  if (!s && (s = kvi_vae_create(&v, &vc, tc.batch, tc.seed)) != KVI_OK)
    s = kvi_fail(s, "%s: %s", path, kvi_last_error());
  const bool has_best = kvi_json_bool(kvi_json_get(st, "best"));
  if (!s) s = kvi__read_views(v->model->params.data, &v->model->params, c.f, "", path);
  if (!s && t) s = kvi__vae_restore(t, v, &tc, &c, has_best, path);
  if (!s && best && has_best) {
    s = kvi__read_views(v->model->params.data, &v->model->params, c.f, "best.", path);
    if (!s && had_best) *had_best = true;
  }
  kvi__ckpt_close(&c);
  if (s) {
    if (t && t->vae) kvi_vae_trainer_free(t);
    kvi_vae_free(v);
    return s;
  }
  *out = v;
  return KVI_OK;
}
