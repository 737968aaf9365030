/* Models of several nets over one parameter block (double precision): parameter names with the
 * nets' prefixes, kvi_model_save / kvi_model_load round trips (architectures, configurations,
 * parameter bytes, forward outputs), nets sharing views through kvi_model_add_net_over, the
 * builder API against architecture strings, and bad input (truncated files, a model file given
 * to kvi_checkpoint_load, adding nets after finish or beyond KVI_MODEL_MAX_NETS, bad names). */
#include "kronvi/train.h"
#include "kvi_test.h"

#define B 3

static kvi_net_config net_cfg(kvi_family fam) {
  kvi_net_config c = kvi_net_config_default();
  c.family = fam;
  c.prior = fam == KVI_FAMILY_POINT ? KVI_PRIOR_NONE : KVI_PRIOR_ARD;
  c.init_log_sigma = -1.5;
  return c;
}

static void model_path(char *buf, size_t n, const char *file) {
  snprintf(buf, n, "%s/%s", kvi_test_dir(), file);
}

/* The encoder-decoder model: "enc" 6-8-4 (MN) and "dec" 4-8-6 (diagonal). */
static kvi_model *make_encdec(uint64_t seed) {
  kvi_model *m = NULL;
  CHECK_OK(kvi_model_create(&m));
  if (!m) return NULL;
  kvi_net_config mn = net_cfg(KVI_FAMILY_MN), dg = net_cfg(KVI_FAMILY_DIAG);
  kvi_net *enc = NULL, *dec = NULL;
  CHECK_OK(kvi_model_add_net(m, &enc, "enc", "6-8-4", 6, &mn, B));
  CHECK_OK(kvi_model_add_net(m, &dec, "dec", "4-8-6", 4, &dg, B));
  CHECK_OK(kvi_model_finish(m, seed));
  if (!m->ready || !enc || !dec) {
    kvi_model_free(m);
    return NULL;
  }
  return m;
}

/* enc then dec on X (B, 6), mean path or sampled with a fixed stream; out (B, 6). */
static void run_encdec(kvi_model *m, const kvi_real *X, bool sampled, kvi_real *out) {
  kvi_net *enc = kvi_model_net(m, "enc"), *dec = kvi_model_net(m, "dec");
  const kvi_real *z = NULL, *y = NULL;
  kvi_rng r1 = kvi_rng_stream(77, 1), r2 = kvi_rng_stream(77, 2);
  memset(out, 0, B * 6 * sizeof *out);
  if (!enc || !dec) return;
  CHECK_OK(kvi_net_forward(enc, &z, X, B, sampled ? &r1 : NULL));
  if (z) CHECK_OK(kvi_net_forward(dec, &y, z, B, sampled ? &r2 : NULL));
  if (y) memcpy(out, y, B * 6 * sizeof *out);
}

/* Same nets (ids, prefixes, architectures, configurations) and the same parameter bytes. */
static void check_same_model(const kvi_model *a, const kvi_model *b) {
  CHECK(a->nnets == b->nnets && b->ready);
  for (int k = 0; k < a->nnets && k < b->nnets; k++) {
    const kvi_net *x = a->nets[k], *y = b->nets[k];
    CHECK(!strcmp(x->id, y->id) && !strcmp(x->name, y->name) && !strcmp(x->arch, y->arch));
    CHECK(x->cfg.family == y->cfg.family && x->cfg.prior == y->cfg.prior);
    CHECK(x->cfg.act == y->cfg.act && x->cfg.bias == y->cfg.bias);
    CHECK(x->in_size == y->in_size && x->out_size == y->out_size);
    CHECK(x->max_batch == y->max_batch && x->nlayers == y->nlayers);
    CHECK(y->params == &b->params);
  }
  CHECK(a->params.n == b->params.n && a->params.nviews == b->params.nviews);
  if (a->params.n != b->params.n || a->params.nviews != b->params.nviews) return;
  for (int v = 0; v < a->params.nviews; v++) {
    const kvi_view *x = &a->params.views[v], *y = &b->params.views[v];
    CHECK(!strcmp(x->name, y->name) && x->offset == y->offset && x->size == y->size);
    CHECK(x->role == y->role && x->ndim == y->ndim);
  }
  CHECK(memcmp(a->params.data, b->params.data, a->params.n * sizeof(kvi_real)) == 0);
}

static void check_encdec_roundtrip(void) {
  kvi_model *m = make_encdec(42);
  if (!m) return;
  kvi_net *enc = kvi_model_net(m, "enc"), *dec = kvi_model_net(m, "dec");
  CHECK(m->nnets == 2 && enc == m->nets[0] && dec == m->nets[1]);
  CHECK(kvi_model_net(m, "enc.") == NULL && kvi_model_net(m, "other") == NULL);
  CHECK(!strcmp(enc->id, "enc") && !strcmp(enc->name, "enc."));
  CHECK(enc->params == &m->params && dec->params == &m->params);
  /* parameter names carry the net prefix; the families decide which views exist */
  const char *present[] = {"enc.fc0.M", "enc.fc0.A", "enc.fc0.B",        "enc.fc0.b",
                           "enc.fc1.M", "enc.fc1.b", "dec.fc0.M",        "dec.fc0.log_sigma",
                           "dec.fc1.M", "dec.fc1.b", "dec.fc1.log_sigma"};
  for (size_t i = 0; i < sizeof present / sizeof *present; i++) {
    if (kvi_params_find(&m->params, present[i]) < 0) fprintf(stderr, "no %s\n", present[i]);
    CHECK(kvi_params_find(&m->params, present[i]) >= 0);
  }
  CHECK(kvi_params_find(&m->params, "fc0.M") < 0);
  CHECK(kvi_params_find(&m->params, "dec.fc0.A") < 0);
  CHECK(kvi_params_find(&m->params, "enc.fc0.log_sigma") < 0);
  for (int v = 0; v < m->params.nviews; v++) {
    const char *nm = m->params.views[v].name;
    CHECK(!strncmp(nm, "enc.", 4) || !strncmp(nm, "dec.", 4));
  }
  CHECK(kvi_net_dense(enc, 1, NULL)->iM == kvi_params_find(&m->params, "enc.fc1.M"));
  CHECK(kvi_net_dense(dec, 0, NULL)->iS == kvi_params_find(&m->params, "dec.fc0.log_sigma"));

  kvi_real X[B * 6], y_mean[B * 6], y_smp[B * 6], y2[B * 6];
  kvi_rng r = kvi_rng_stream(5, 5);
  kvi_rng_normal(&r, X, B * 6);
  run_encdec(m, X, false, y_mean);
  run_encdec(m, X, true, y_smp);
  CHECK(memcmp(y_mean, y_smp, sizeof y_mean) != 0); /* the noise matters */

  char path[512];
  model_path(path, sizeof path, "encdec.model");
  CHECK_OK(kvi_model_save(path, m));
  kvi_model *m2 = NULL;
  CHECK_OK(kvi_model_load(&m2, path));
  if (m2) {
    check_same_model(m, m2);
    run_encdec(m2, X, false, y2);
    CHECK(memcmp(y_mean, y2, sizeof y2) == 0);
    run_encdec(m2, X, true, y2);
    CHECK(memcmp(y_smp, y2, sizeof y2) == 0);
    /* saving the loaded model gives the same model again */
    char path2[512];
    model_path(path2, sizeof path2, "encdec2.model");
    CHECK_OK(kvi_model_save(path2, m2));
    kvi_model *m3 = NULL;
    CHECK_OK(kvi_model_load(&m3, path2));
    if (m3) check_same_model(m, m3);
    kvi_model_free(m3);
    remove(path2);
  }
  kvi_model_free(m2);

  /* the same seed gives the same model; another seed does not */
  kvi_model *same = make_encdec(42), *other = make_encdec(43);
  if (same) check_same_model(m, same);
  if (other) CHECK(memcmp(m->params.data, other->params.data, m->params.n * sizeof(kvi_real)) != 0);
  kvi_model_free(same), kvi_model_free(other);
  kvi_model_free(m);
  remove(path);
}

/* A point net and the MN posterior around its weights: "mn" over "point" shares the means and
 * biases (the views "point.fc<k>.M" / ".b") and adds its factors under the same prefix. */
static void check_sharing(void) {
  kvi_model *m = NULL;
  CHECK_OK(kvi_model_create(&m));
  if (!m) return;
  kvi_net_config pc = net_cfg(KVI_FAMILY_POINT), mc = net_cfg(KVI_FAMILY_MN);
  kvi_net *pt = NULL, *mn = NULL, *bad = NULL;
  CHECK_OK(kvi_model_add_net(m, &pt, "point", "6-5-3", 6, &pc, B));
  CHECK_OK(kvi_model_add_net_over(m, &mn, "mn", "point", "6-5-3", 6, &mc, B));
  /* same names with another shape, or over a net that does not exist */
  CHECK_FAILS(kvi_model_add_net_over(m, &bad, "mn2", "point", "6-4-3", 6, &mc, B));
  CHECK_FAILS(kvi_model_add_net_over(m, &bad, "mn3", "nosuch", "6-5-3", 6, &mc, B));
  CHECK(m->nnets == 2 && bad == NULL);
  CHECK_OK(kvi_model_finish(m, 3));
  if (!pt || !mn || !m->ready) {
    kvi_model_free(m);
    return;
  }
  CHECK(!strcmp(mn->id, "mn") && !strcmp(mn->name, "point."));
  CHECK(kvi_model_net(m, "mn") == mn && kvi_model_net(m, "point") == pt);
  CHECK(m->params.nviews == 8); /* 2 x (M, b) shared, 2 x (A, B) of the MN net */
  for (int k = 0; k < 2; k++) {
    const kvi_dense *a = kvi_net_dense(pt, k, NULL), *b = kvi_net_dense(mn, k, NULL);
    CHECK(a->iM == b->iM && a->ib == b->ib);
    CHECK(a->iA < 0 && b->iA >= 0 && b->iB >= 0);
  }
  CHECK(kvi_params_find(&m->params, "point.fc1.A") >= 0);
  /* the mean network of the posterior is the point net */
  kvi_real X[B * 6], y1[B * 3], y2[B * 3];
  kvi_rng r = kvi_rng_stream(9, 9);
  kvi_rng_normal(&r, X, B * 6);
  const kvi_real *o = NULL;
  CHECK_OK(kvi_net_forward(pt, &o, X, B, NULL));
  if (o) memcpy(y1, o, sizeof y1);
  CHECK_OK(kvi_net_forward(mn, &o, X, B, NULL));
  if (o) memcpy(y2, o, sizeof y2);
  double d = 0;
  for (int i = 0; i < B * 3; i++) d = fmax(d, fabs(y1[i] - y2[i]));
  CHECK(d < 1e-12);
  /* a change through one net is seen by the other */
  kvi_params_data(&m->params, kvi_net_dense(pt, 1, NULL)->ib)[0] += 1.0;
  CHECK_OK(kvi_net_forward(mn, &o, X, B, NULL));
  if (o) CHECK_NEAR(o[0], y2[0] + 1.0, 1e-12);

  char path[512];
  model_path(path, sizeof path, "shared.model");
  CHECK_OK(kvi_model_save(path, m));
  kvi_model *m2 = NULL;
  CHECK_OK(kvi_model_load(&m2, path));
  if (m2) {
    check_same_model(m, m2);
    kvi_net *mn2 = kvi_model_net(m2, "mn"), *pt2 = kvi_model_net(m2, "point");
    CHECK(mn2 && pt2 && !strcmp(mn2->name, "point."));
    if (mn2 && pt2) CHECK(kvi_net_dense(mn2, 0, NULL)->iM == kvi_net_dense(pt2, 0, NULL)->iM);
  }
  kvi_model_free(m2);
  kvi_model_free(m);
  remove(path);
}

/* The builder spells the same architectures as the strings. */
static void check_builder(void) {
  kvi_net_builder b;
  const char *arch = NULL;
  kvi_builder_begin(&b, 6);
  kvi_builder_dense(&b, 8);
  kvi_builder_dense(&b, 4);
  CHECK_OK(kvi_builder_arch(&b, &arch));
  CHECK(arch && !strcmp(arch, "6-8-4"));
  /* a model with only the built encoder equals the encoder of make_encdec (net 0, seed 42) */
  kvi_model *m = NULL, *ref = make_encdec(42);
  CHECK_OK(kvi_model_create(&m));
  kvi_net_config mn = net_cfg(KVI_FAMILY_MN);
  kvi_net *enc = NULL;
  if (m && arch) CHECK_OK(kvi_model_add_net(m, &enc, "enc", arch, 6, &mn, B));
  if (enc) CHECK_OK(kvi_model_finish(m, 42));
  if (enc && ref && m->ready) {
    kvi_net *e2 = kvi_model_net(ref, "enc");
    CHECK(!strcmp(enc->arch, e2->arch) && enc->cfg.family == e2->cfg.family);
    for (int v = 0; v < m->params.nviews; v++) {
      const kvi_view *x = &m->params.views[v];
      int j = kvi_params_find(&ref->params, x->name);
      CHECK(j >= 0 && ref->params.views[j].size == x->size);
      if (j >= 0 && ref->params.views[j].size == x->size)
        CHECK(memcmp(m->params.data + x->offset, ref->params.data + ref->params.views[j].offset,
                     x->size * sizeof(kvi_real)) == 0);
    }
  }
  kvi_model_free(m), kvi_model_free(ref);

  /* a conv net: explicit kernel options give the defaults of "2-3-mp-flatten-4" */
  kvi_builder_begin(&b, 2);
  kvi_builder_conv(&b, 3, 3, 1, 1);
  kvi_builder_act(&b, KVI_ACT_RELU);
  kvi_builder_pool(&b);
  kvi_builder_flatten(&b);
  kvi_builder_dense(&b, 4);
  CHECK_OK(kvi_builder_arch(&b, &arch));
  CHECK(arch && !strcmp(arch, "2-3k3s1p1-relu-mp-flatten-4"));
  kvi_net_config cc = net_cfg(KVI_FAMILY_MN);
  cc.act = KVI_ACT_RELU;
  kvi_net *n1 = NULL, *n2 = NULL;
  if (arch) CHECK_OK(kvi_net_create(&n1, arch, 72, &cc, B, 8));
  CHECK_OK(kvi_net_create(&n2, "2-3-mp-flatten-4", 72, &cc, B, 8));
  if (n1 && n2) {
    CHECK(n1->nlayers == n2->nlayers && n1->params->n == n2->params->n);
    if (n1->params->n == n2->params->n)
      CHECK(memcmp(n1->params->data, n2->params->data, n1->params->n * sizeof(kvi_real)) == 0);
    kvi_real X[B * 72], y1[B * 4];
    kvi_rng r = kvi_rng_stream(1, 1);
    kvi_rng_normal(&r, X, B * 72);
    const kvi_real *o = NULL;
    CHECK_OK(kvi_net_forward(n1, &o, X, B, NULL));
    if (o) memcpy(y1, o, sizeof y1);
    CHECK_OK(kvi_net_forward(n2, &o, X, B, NULL));
    if (o) CHECK(memcmp(o, y1, sizeof y1) == 0);
  }
  kvi_net_free(n1), kvi_net_free(n2);

  /* the first error sticks */
  kvi_builder_begin(&b, 6);
  kvi_clear_error();
  kvi_builder_token(&b, "8-4");
  CHECK(b.status == KVI_ERR_ARG && strstr(kvi_last_error(), "8-4") != NULL);
  kvi_builder_dense(&b, 4);
  CHECK_STATUS(kvi_builder_arch(&b, &arch), KVI_ERR_ARG);
  CHECK(!strcmp(b.arch, "6"));
}

static kvi_status write_prefix(const char *dst, const unsigned char *buf, size_t len) {
  FILE *f = fopen(dst, "wb");
  if (!f) return KVI_ERR_IO;
  size_t w = len ? fwrite(buf, 1, len, f) : 0;
  fclose(f);
  return w == len ? KVI_OK : KVI_ERR_IO;
}

static void check_bad_input(void) {
  kvi_model *m = make_encdec(1);
  if (!m) return;
  char path[512], cut[512];
  model_path(path, sizeof path, "bad.model");
  model_path(cut, sizeof cut, "bad_cut.model");
  CHECK_OK(kvi_model_save(path, m));
  /* truncated copies: every one fails with a message and returns no model */
  FILE *f = fopen(path, "rb");
  CHECK(f != NULL);
  unsigned char *buf = NULL;
  long len = 0;
  if (f) {
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    buf = malloc((size_t)len);
    CHECK(buf && fread(buf, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
  }
  const long cuts[5] = {0, 7, len / 3, len / 2, len - 1};
  for (int i = 0; buf && i < 5; i++) {
    CHECK_OK(write_prefix(cut, buf, (size_t)cuts[i]));
    static kvi_model sentinel;
    kvi_model *t = &sentinel; /* must be reset to NULL */
    CHECK_FAILS(kvi_model_load(&t, cut));
    CHECK(t == NULL);
  }
  free(buf);
  /* a model file is not a checkpoint of one net */
  kvi_net *net = NULL;
  CHECK_FAILS(kvi_checkpoint_load(path, &net, NULL, NULL));
  CHECK(strstr(kvi_last_error(), "kvi_model_load") != NULL);
  CHECK(net == NULL);
  kvi_model *t = NULL;
  CHECK_FAILS(kvi_model_load(&t, "/nonexistent/dir/x.model"));
  remove(cut);
  remove(path);

  /* nets are added before finish only, and finish runs once */
  kvi_net_config c = net_cfg(KVI_FAMILY_DIAG);
  CHECK_FAILS(kvi_model_add_net(m, &net, "late", "6-2", 6, &c, B));
  CHECK(m->nnets == 2);
  CHECK_FAILS(kvi_model_finish(m, 1));
  kvi_model_free(m);

  CHECK_OK(kvi_model_create(&m));
  if (!m) return;
  CHECK_FAILS(kvi_model_finish(m, 1));  /* no nets */
  CHECK_FAILS(kvi_model_save(path, m)); /* unfinished */
  char nm[16];
  for (int k = 0; k < KVI_MODEL_MAX_NETS; k++) {
    snprintf(nm, sizeof nm, "n%d", k);
    CHECK_OK(kvi_model_add_net(m, NULL, nm, "6-2", 6, &c, B));
  }
  CHECK_FAILS(kvi_model_add_net(m, NULL, "n_extra", "6-2", 6, &c, B));
  CHECK(m->nnets == KVI_MODEL_MAX_NETS);
  kvi_model_free(m);

  /* names: unique, no '.', at most 15 characters; a bad architecture names the net */
  CHECK_OK(kvi_model_create(&m));
  if (!m) return;
  CHECK_OK(kvi_model_add_net(m, NULL, "a", "6-2", 6, &c, B));
  CHECK_FAILS(kvi_model_add_net(m, NULL, "a", "6-3", 6, &c, B));
  CHECK_FAILS(kvi_model_add_net(m, NULL, "a.b", "6-3", 6, &c, B));
  CHECK_FAILS(kvi_model_add_net(m, NULL, "abcdefghijklmnop", "6-3", 6, &c, B));
  CHECK_FAILS(kvi_model_add_net(m, NULL, "x", "6-q-3", 6, &c, B));
  CHECK(strstr(kvi_last_error(), "'x'") != NULL);
  CHECK_FAILS(kvi_model_add_net(m, NULL, NULL, "6-3", 6, &c, B));
  CHECK(m->nnets == 1);
  kvi_model_free(m);
}

int main(void) {
  check_encdec_roundtrip();
  check_sharing();
  check_builder();
  check_bad_input();
  TEST_MAIN_END();
}
