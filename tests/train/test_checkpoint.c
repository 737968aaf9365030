/* Training on a small synthetic problem: the loss goes down, checkpoints round-trip exactly,
 * a resumed run is bit-identical to an uninterrupted one, and bad checkpoints fail cleanly. */
#include <unistd.h>

#include "kronvi/io.h"
#include "kronvi/train.h"
#include "kvi_test.h"

/* Three Gaussian blobs in 6 dimensions. */
static void make_data(kvi_dataset *ds, int64_t n, uint64_t seed) {
  kvi_dataset_init(ds);
  CHECK_OK(kvi_dataset_alloc(ds, n, 6, 0, 0, 0, 3, 0));
  kvi_rng r = kvi_rng_stream(seed, 1);
  kvi_rng_normal(&r, ds->x, (size_t)n * 6);
  for (int64_t i = 0; i < n; i++) {
    int c = (int)(i % 3);
    ds->y[i] = c;
    ds->x[i * 6 + c] += 2.5;
  }
}

static kvi_train_config small_cfg(void) {
  kvi_train_config cfg = kvi_train_config_default();
  cfg.epochs = 4;
  cfg.batch = 32;
  cfg.opt.lr = 2e-2;
  cfg.kl_warmup = 2;
  cfg.samples = 3;
  cfg.progress = 0;
  cfg.seed = 7;
  return cfg;
}

/* A checkpoint after every epoch, as kronvi train --save does. */
static void save_every_epoch(kvi_trainer *t, const char *path) {
  kvi_callback cb;
  CHECK_OK(kvi_checkpoint_callback(&cb, path, 1, NULL));
  CHECK_OK(kvi_trainer_add_callback(t, cb));
}

static int params_equal(const kvi_net *a, const kvi_net *b) {
  return a->params->n == b->params->n &&
         memcmp(a->params->data, b->params->data, a->params->n * sizeof(kvi_real)) == 0;
}

static void test_roundtrip_and_resume(kvi_family fam) {
  char path[512], path2[512];
  snprintf(path, sizeof path, "%s/ckpt_%s.safetensors", kvi_test_dir(), kvi_family_name(fam));
  snprintf(path2, sizeof path2, "%s/ckpt2_%s.safetensors", kvi_test_dir(), kvi_family_name(fam));
  kvi_dataset train, test;
  make_data(&train, 300, 1);
  make_data(&test, 150, 2);
  kvi_net_config nc = kvi_net_config_default();
  nc.family = fam;
  if (fam == KVI_FAMILY_POINT) nc.prior = KVI_PRIOR_NONE;
  /* uninterrupted run: 4 epochs */
  kvi_net *a = NULL;
  kvi_trainer ta;
  CHECK_OK(kvi_net_create(&a, "6-16-3", 6, &nc, 64, 3));
  kvi_train_config cfg = small_cfg();
  CHECK_OK(kvi_trainer_init(&ta, a, &cfg));
  save_every_epoch(&ta, path);
  kvi_metrics m0;
  CHECK_OK(kvi_evaluate(&m0, a, &test, 0, 1, 3, 0));
  CHECK_OK(kvi_train(&ta, &train, NULL, &test));
  kvi_metrics m1;
  CHECK_OK(kvi_evaluate(&m1, a, &test, 5, 1, 3, 0));
  CHECK(m1.acc_mean > 0.8); /* blobs are easy: far above chance (1/3) */
  CHECK(m1.acc_bma > 0.8);
  CHECK(m1.nll_mean < m0.nll_mean);
  CHECK(m1.ece >= 0 && m1.ece < 0.5);
  /* load: identical parameters and optimizer state */
  kvi_net *b = NULL;
  kvi_trainer tb;
  kvi_train_config cb;
  CHECK_OK(kvi_checkpoint_load(path, &b, &tb, &cb));
  if (!b) return;
  CHECK(params_equal(a, b));
  CHECK(tb.epoch == 4 && tb.step == ta.step && tb.opt.t == ta.opt.t);
  CHECK(ta.opt.nstate == tb.opt.nstate && ta.opt.nstate > 0);
  for (int i = 0; i < ta.opt.nstate && i < tb.opt.nstate; i++)
    CHECK(!strcmp(ta.opt.state[i].name, tb.opt.state[i].name) &&
          memcmp(ta.opt.state[i].data, tb.opt.state[i].data,
                 ta.opt.state[i].size * sizeof(kvi_real)) == 0);
  CHECK(cb.seed == 7 && cb.batch == 32 && cb.epochs == 4);
  kvi_trainer_free(&tb);
  kvi_net_free(b);
  /* interrupted run: 2 epochs, reload, 2 more: bit-identical to the uninterrupted one */
  kvi_net *c = NULL;
  kvi_trainer tc;
  CHECK_OK(kvi_net_create(&c, "6-16-3", 6, &nc, 64, 3));
  cfg = small_cfg();
  cfg.epochs = 2;
  CHECK_OK(kvi_trainer_init(&tc, c, &cfg));
  save_every_epoch(&tc, path2);
  CHECK_OK(kvi_train(&tc, &train, NULL, &test));
  kvi_trainer_free(&tc);
  kvi_net_free(c);
  kvi_net *d = NULL;
  kvi_trainer td;
  CHECK_OK(kvi_checkpoint_load(path2, &d, &td, NULL));
  if (!d) return;
  td.cfg.progress = 0;
  CHECK(td.epoch == 2);
  td.cfg.epochs = 4;
  CHECK_OK(kvi_train(&td, &train, NULL, &test));
  CHECK(params_equal(a, d));
  kvi_trainer_free(&td);
  kvi_net_free(d);
  kvi_trainer_free(&ta);
  kvi_net_free(a);
  kvi_dataset_free(&train);
  kvi_dataset_free(&test);
}

static void write_bytes(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (f) {
    fwrite(p, 1, n, f);
    fclose(f);
  }
}

static void test_bad_checkpoints(void) {
  char good[512], bad[512];
  snprintf(good, sizeof good, "%s/ckpt_mn.safetensors", kvi_test_dir());
  snprintf(bad, sizeof bad, "%s/ckpt_bad.safetensors", kvi_test_dir());
  char *data = NULL;
  size_t len = 0;
  CHECK_OK(kvi_read_file(&data, &len, good, 1u << 30));
  if (!data) return;
  kvi_net *net = NULL;
  size_t cuts[] = {0, 4, 9, 100, len / 2, len - 1};
  for (int i = 0; i < 6; i++) {
    write_bytes(bad, data, cuts[i]);
    CHECK_FAILS(kvi_checkpoint_load(bad, &net, NULL, NULL));
    CHECK(net == NULL);
  }
  /* foreign files: gzip magic, random bytes, a safetensors file without kronvi metadata */
  unsigned char gz[64] = {0x1f, 0x8b, 8, 0};
  write_bytes(bad, gz, sizeof gz);
  CHECK_FAILS(kvi_checkpoint_load(bad, &net, NULL, NULL));
  double x[3] = {1, 2, 3};
  kvi_st_tensor t = {.name = "w", .dtype = "F64", .ndim = 1, .shape = {3}, .data = x};
  CHECK_OK(kvi_safetensors_write(bad, &t, 1, NULL, NULL, 0));
  CHECK_FAILS(kvi_checkpoint_load(bad, &net, NULL, NULL));
  CHECK(strstr(kvi_last_error(), "kronvi") != NULL);
  CHECK_FAILS(kvi_checkpoint_load("/nonexistent/dir/model.safetensors", &net, NULL, NULL));
  /* a failed save leaves the existing file untouched */
  kvi_net *a = NULL;
  kvi_trainer ta;
  kvi_net_config nc = kvi_net_config_default();
  CHECK_OK(kvi_net_create(&a, "6-3", 6, &nc, 64, 1));
  kvi_train_config cfg = small_cfg();
  CHECK_OK(kvi_trainer_init(&ta, a, &cfg));
  char dirpath[512];
  snprintf(dirpath, sizeof dirpath, "%s/no_such_dir/x.safetensors", kvi_test_dir());
  CHECK_FAILS(kvi_checkpoint_save(dirpath, &ta, NULL));
  char *after = NULL;
  size_t len2 = 0;
  CHECK_OK(kvi_read_file(&after, &len2, good, 1u << 30));
  CHECK(after && len2 == len && memcmp(after, data, len) == 0);
  free(after);
  /* input_norm (--normalize) round-trips; a non-positive std in it is refused */
  a->cfg.input_mean = 0.25, a->cfg.input_std = 0.5;
  char normp[512];
  snprintf(normp, sizeof normp, "%s/ckpt_norm.safetensors", kvi_test_dir());
  CHECK_OK(kvi_checkpoint_save(normp, &ta, NULL));
  CHECK_OK(kvi_checkpoint_load(normp, &net, NULL, NULL));
  CHECK(net && net->cfg.input_mean == 0.25 && net->cfg.input_std == 0.5);
  kvi_net_free(net);
  net = NULL;
  char *nd = NULL;
  size_t nlen = 0;
  CHECK_OK(kvi_read_file(&nd, &nlen, normp, 1u << 30));
  /* the JSON header follows the 8-byte length (whose zero bytes would stop strstr) */
  char *key = nd && nlen > 8 ? strstr(nd + 8, "input_norm") : NULL;
  char *sd = key ? strstr(key, "0.5]") : NULL;
  CHECK(sd != NULL);
  if (sd) {
    memcpy(sd, "0.0]", 4); /* same length: the header stays valid */
    write_bytes(bad, nd, nlen);
    CHECK_FAILS(kvi_checkpoint_load(bad, &net, NULL, NULL));
    CHECK(net == NULL && strstr(kvi_last_error(), "input_norm") != NULL);
  }
  free(nd);
  kvi_trainer_free(&ta);
  kvi_net_free(a);
  free(data);
}

/* Copies checkpoint src to dst with the first `find` in its "kronvi" metadata replaced. */
static bool rewrite_meta(const char *src, const char *dst, const char *find, const char *repl) {
  kvi_st_file *f = NULL;
  if (kvi_safetensors_open(&f, src)) return false;
  const char *meta = kvi_st_meta(f, "kronvi");
  const char *at = meta ? strstr(meta, find) : NULL;
  bool ok = at != NULL;
  if (ok) {
    size_t n = strlen(meta) + strlen(repl) + 1, pre = (size_t)(at - meta);
    char *m2 = malloc(n);
    snprintf(m2, n, "%.*s%s%s", (int)pre, meta, repl, at + strlen(find));
    int nt = kvi_st_count(f);
    kvi_st_tensor *ts = calloc((size_t)nt, sizeof *ts);
    for (int i = 0; i < nt; i++) ts[i] = *kvi_st_at(f, i);
    const char *keys[2] = {"format", "kronvi"}, *vals[2] = {"kronvi", m2};
    ok = kvi_safetensors_write(dst, ts, nt, keys, vals, 2) == KVI_OK;
    free(ts), free(m2);
  }
  kvi_safetensors_close(f);
  return ok;
}

/* Every metadata field is checked with the command line's ranges; a field that is absent, not a
 * number, or out of range is refused with a message naming it. */
static void test_metadata_fields(void) {
  char good[512], bad[512];
  snprintf(good, sizeof good, "%s/ckpt_mn.safetensors", kvi_test_dir());
  snprintf(bad, sizeof bad, "%s/ckpt_field.safetensors", kvi_test_dir());
  const struct {
    const char *find, *repl, *field;
  } cases[] = {
      {"\"epoch\":4", "\"epoch\":-1000000", "state.epoch"},
      {"\"epoch\":4", "\"epoch\":4294967298", "state.epoch"},
      {"\"optimizer_t\":", "\"optimizer_t\":-", "state.optimizer_t"},
      {"\"step\":", "\"step\":-", "state.step"},
      {"\"lr_decay\":1", "\"lr_decay\":null", "train.lr_decay"},
      {"\"samples\":3", "\"samples\":-5", "train.samples"},
      {"\"lr\":", "\"lr_x\":", "train.lr"},
      {"\"batch\":32", "\"batch\":\"32\"", "train.batch"},
      {"\"kl_warmup\":2", "\"kl_warmup\":-1", "train.kl_warmup"},
      {"\"prune_threshold\":3", "\"prune_threshold\":1000", "train.prune_threshold"},
      {"\"seed\":\"7\"", "\"seed\":7", "train.seed"},
      {"\"init_log_sigma\":", "\"init_log_sigmaX\":", "model.init_log_sigma"},
      {"\"val\":0", "\"val\":-1", "data.val"},
      {"\"pad\":0", "\"pad\":1000", "data.pad"},
      {"\"version\":2", "\"version\":99", "version"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CHECK(rewrite_meta(good, bad, cases[i].find, cases[i].repl));
    kvi_net *net = NULL;
    kvi_trainer t;
    CHECK_FAILS(kvi_checkpoint_load(bad, &net, &t, NULL));
    CHECK(net == NULL);
    if (!strstr(kvi_last_error(), cases[i].field)) {
      fprintf(stderr, "case %s -> %s: message '%s' does not name %s\n", cases[i].find,
              cases[i].repl, kvi_last_error(), cases[i].field);
      CHECK(0);
    }
  }
  /* the unchanged copy loads: the rewriting itself is faithful */
  CHECK(rewrite_meta(good, bad, "\"epoch\":4", "\"epoch\":4"));
  kvi_net *net = NULL;
  kvi_trainer t;
  CHECK_OK(kvi_checkpoint_load(bad, &net, &t, NULL));
  if (net) kvi_trainer_free(&t), kvi_net_free(net);
}

/* Version 1 files (one flat "optim.m"/"optim.v" with the writer's 64-byte alignment gaps)
 * still load, their moments scattered to the views. */
static void test_version1(void) {
  char good[512], v1[512];
  snprintf(good, sizeof good, "%s/ckpt_mn.safetensors", kvi_test_dir());
  snprintf(v1, sizeof v1, "%s/ckpt_v1.safetensors", kvi_test_dir());
  kvi_net *a = NULL;
  kvi_trainer ta;
  CHECK_OK(kvi_checkpoint_load(good, &a, &ta, NULL));
  if (!a) return;
  /* build the version-1 layout from the loaded state: the flat buffers with gaps */
  kvi_params *p = a->params;
  kvi_real *flat[2] = {kvi_alloc(p->n * sizeof(kvi_real)), kvi_alloc(p->n * sizeof(kvi_real))};
  for (int i = 0; i < ta.opt.nstate; i++) {
    const kvi_opt_state *st = &ta.opt.state[i];
    int b = !strncmp(st->name, "optim.v.", 8);
    memcpy(flat[b] + p->views[st->view].offset, st->data, st->size * sizeof(kvi_real));
  }
  kvi_st_file *f = NULL;
  CHECK_OK(kvi_safetensors_open(&f, good));
  int nt = kvi_st_count(f), k = 0;
  kvi_st_tensor *ts = calloc((size_t)nt + 2, sizeof *ts);
  for (int i = 0; i < nt; i++)
    if (strncmp(kvi_st_at(f, i)->name, "optim.", 6)) ts[k++] = *kvi_st_at(f, i);
  for (int b = 0; b < 2; b++) {
    ts[k] = (kvi_st_tensor){
        .name = b ? "optim.v" : "optim.m", .dtype = "F64", .ndim = 1, .data = flat[b]};
    ts[k++].shape[0] = (int64_t)p->n;
  }
  char *meta = malloc(strlen(kvi_st_meta(f, "kronvi")) + 1);
  strcpy(meta, kvi_st_meta(f, "kronvi"));
  char *ver = strstr(meta, "\"version\":2");
  if (ver) ver[10] = '1';
  const char *keys[2] = {"format", "kronvi"}, *vals[2] = {"kronvi", meta};
  CHECK_OK(kvi_safetensors_write(v1, ts, k, keys, vals, 2));
  kvi_safetensors_close(f);
  kvi_net *b = NULL;
  kvi_trainer tb;
  CHECK_OK(kvi_checkpoint_load(v1, &b, &tb, NULL));
  if (b) {
    CHECK(params_equal(a, b) && tb.opt.nstate == ta.opt.nstate);
    for (int i = 0; i < ta.opt.nstate && i < tb.opt.nstate; i++)
      CHECK(memcmp(ta.opt.state[i].data, tb.opt.state[i].data,
                   ta.opt.state[i].size * sizeof(kvi_real)) == 0);
    kvi_trainer_free(&tb);
    kvi_net_free(b);
  }
  free(ts), free(meta), kvi_free(flat[0]), kvi_free(flat[1]);
  kvi_trainer_free(&ta);
  kvi_net_free(a);
}

/* A checkpoint written in single precision (every tensor F32, as the f32 build writes them)
 * resumes in this double-precision build: parameters and optimizer state per view, and the
 * version-1 layout with the f32 build's 16-element alignment gaps. */
static void test_other_precision(void) {
  char good[512], f32p[512];
  snprintf(good, sizeof good, "%s/ckpt_mn.safetensors", kvi_test_dir());
  snprintf(f32p, sizeof f32p, "%s/ckpt_f32.safetensors", kvi_test_dir());
  kvi_net *a = NULL;
  kvi_trainer ta;
  CHECK_OK(kvi_checkpoint_load(good, &a, &ta, NULL));
  if (!a) return;
  kvi_st_file *f = NULL;
  CHECK_OK(kvi_safetensors_open(&f, good));
  int nt = kvi_st_count(f);
  kvi_st_tensor *ts = calloc((size_t)nt, sizeof *ts);
  float **bufs = calloc((size_t)nt, sizeof *bufs);
  for (int i = 0; i < nt; i++) {
    ts[i] = *kvi_st_at(f, i);
    if (strcmp(ts[i].dtype, "F64")) continue;
    int64_t n = kvi_st_numel(&ts[i]);
    bufs[i] = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t j = 0; j < n; j++) bufs[i][j] = (float)((const double *)ts[i].data)[j];
    ts[i].dtype = "F32", ts[i].data = bufs[i];
  }
  const char *keys[2] = {"format", "kronvi"}, *vals[2] = {"kronvi", kvi_st_meta(f, "kronvi")};
  CHECK_OK(kvi_safetensors_write(f32p, ts, nt, keys, vals, 2));
  kvi_net *b = NULL;
  kvi_trainer tb;
  CHECK_OK(kvi_checkpoint_load(f32p, &b, &tb, NULL));
  if (b) {
    double worst = 0;
    for (size_t i = 0; i < a->params->n; i++)
      worst = fmax(worst, fabs(a->params->data[i] - b->params->data[i]));
    for (int i = 0; i < ta.opt.nstate && i < tb.opt.nstate; i++)
      for (size_t j = 0; j < ta.opt.state[i].size; j++)
        worst = fmax(worst, fabs(ta.opt.state[i].data[j] - tb.opt.state[i].data[j]) /
                                (1e-30 + fabs(ta.opt.state[i].data[j])) * 1e-7);
    CHECK(tb.opt.nstate == ta.opt.nstate && tb.step == ta.step);
    CHECK(worst < 1e-6); /* float rounding only */
    kvi_trainer_free(&tb);
    kvi_net_free(b);
  }
  for (int i = 0; i < nt; i++) free(bufs[i]);
  free(bufs), free(ts);
  kvi_safetensors_close(f);
  kvi_trainer_free(&ta);
  kvi_net_free(a);
}

int main(void) {
  kvi_set_threads(1);
  test_roundtrip_and_resume(KVI_FAMILY_POINT);
  test_roundtrip_and_resume(KVI_FAMILY_DIAG);
  test_roundtrip_and_resume(KVI_FAMILY_MNDIAG);
  test_roundtrip_and_resume(KVI_FAMILY_MN);
  test_bad_checkpoints();
  test_metadata_fields();
  test_version1();
  test_other_precision();
  TEST_MAIN_END();
}
