/* CIFAR-10 loader on generated batch files (both directory layouts, limits, auto-detection),
 * bad files failing with a message, and horizontal-flip augmentation. */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "kronvi/data.h"
#include "kvi_test.h"

#define REC 3073
#define PIX 3072

static bool is_empty(const kvi_dataset *ds) { return ds->n == 0 && !ds->x && !ds->y && !ds->t; }

/* Pixel byte q of global record g, and its label. */
static unsigned char pixel(int g, int q) {
  return (unsigned char)((g * 131 + q * 7 + (q >> 5)) & 255);
}
static unsigned char label(int g) { return (unsigned char)((g * 3 + 1) % 10); }

/* Writes m records (global numbers g0..g0+m-1) to path; returns success. */
static bool write_batch(const char *path, int g0, int m) {
  FILE *f = fopen(path, "wb");
  if (!f) return false;
  unsigned char rec[REC];
  bool ok = true;
  for (int i = 0; i < m; i++) {
    rec[0] = label(g0 + i);
    for (int q = 0; q < PIX; q++) rec[1 + q] = pixel(g0 + i, q);
    ok = ok && fwrite(rec, 1, REC, f) == REC;
  }
  return fclose(f) == 0 && ok;
}

static bool write_raw(const char *path, const unsigned char *b, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return false;
  bool ok = n == 0 || fwrite(b, 1, n, f) == n;
  return fclose(f) == 0 && ok;
}

/* rows of ds equal global records g0.. exactly */
static int count_bad(const kvi_dataset *ds, int g0) {
  int bad = 0;
  for (int64_t i = 0; i < ds->n; i++) {
    bad += ds->y[i] != label(g0 + (int)i);
    for (int q = 0; q < PIX; q++) /* file byte q = (channel q / 1024, pixel q % 1024); HWC */
      bad += ds->x[i * PIX + (q % 1024) * 3 + q / 1024] !=
             (kvi_real)((double)pixel(g0 + (int)i, q) / 255.0);
  }
  return bad;
}

static const int batch_sizes[5] = {3, 2, 4, 1, 2}; /* 12 training records */
static const char *names[6] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                               "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};

static void make_dir(const char *dir) {
  mkdir(dir, 0755);
  char p[700];
  int g = 0;
  for (int b = 0; b < 5; b++) {
    snprintf(p, sizeof p, "%s/%s", dir, names[b]);
    CHECK(write_batch(p, g, batch_sizes[b]));
    g += batch_sizes[b];
  }
  snprintf(p, sizeof p, "%s/%s", dir, names[5]);
  CHECK(write_batch(p, 100, 3));
}

static void test_load(void) {
  char dir[512], p[700];
  snprintf(dir, sizeof dir, "%s/data_cifar", kvi_test_dir());
  make_dir(dir);
  kvi_dataset tr, te;
  CHECK_OK(kvi_cifar_load_dir(&tr, &te, dir, 0, 0));
  CHECK(tr.n == 12 && te.n == 3);
  CHECK(tr.d == PIX && tr.c == 3 && tr.h == 32 && tr.w == 32 && tr.nclasses == 10 && tr.k == 0);
  CHECK(te.d == PIX && te.nclasses == 10);
  if (tr.n == 12 && te.n == 3) {
    CHECK(count_bad(&tr, 0) == 0);
    CHECK(count_bad(&te, 100) == 0);
  }
  CHECK_OK(kvi_dataset_validate(&tr, "train"));
  kvi_dataset_free(&tr);
  kvi_dataset_free(&te);

  /* limits: 4 rows = batch 1 and the first row of batch 2 */
  CHECK_OK(kvi_cifar_load_dir(&tr, &te, dir, 4, 2));
  CHECK(tr.n == 4 && te.n == 2);
  if (tr.n == 4 && te.n == 2) CHECK(count_bad(&tr, 0) == 0 && count_bad(&te, 100) == 0);
  kvi_dataset_free(&tr);
  kvi_dataset_free(&te);

  /* auto-detection, and the archive layout dir/cifar-10-batches-bin/ */
  CHECK_OK(kvi_data_load_dir(&tr, &te, dir, 0, 0));
  CHECK(tr.n == 12 && te.n == 3 && tr.c == 3);
  kvi_dataset_free(&tr);
  kvi_dataset_free(&te);
  char parent[512], sub[700];
  snprintf(parent, sizeof parent, "%s/data_cifar_parent", kvi_test_dir());
  mkdir(parent, 0755);
  snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", parent);
  make_dir(sub);
  CHECK_OK(kvi_cifar_load_dir(&tr, &te, parent, 0, 0));
  CHECK(tr.n == 12 && te.n == 3);
  kvi_dataset_free(&tr);
  kvi_dataset_free(&te);
  CHECK_OK(kvi_data_load_dir(&tr, &te, parent, 5, 0));
  CHECK(tr.n == 5 && te.n == 3);
  if (tr.n == 5) CHECK(count_bad(&tr, 0) == 0);
  kvi_dataset_free(&tr);
  kvi_dataset_free(&te);

  /* held as bytes: the same rows (HWC) and labels as the numbers, with and without limits */
  for (int lim = 0; lim <= 5; lim += 5) {
    kvi_dataset bt, bte;
    CHECK_OK(kvi_data_load_dir(&tr, &te, dir, lim, 0));
    CHECK_OK(kvi_data_load_dir_bytes(&bt, &bte, dir, lim, 0));
    CHECK(bt.x8 && !bt.x && bt.n == tr.n && bte.n == te.n && bt.c == 3 && bt.h == 32);
    kvi_real *rows = malloc((size_t)tr.n * PIX * sizeof *rows);
    CHECK(rows && kvi_dataset_rows(&bt, 0, bt.n, rows) &&
          !memcmp(rows, tr.x, (size_t)tr.n * PIX * sizeof *rows) &&
          !memcmp(bt.y, tr.y, (size_t)tr.n * sizeof *tr.y));
    free(rows);
    kvi_dataset_free(&tr), kvi_dataset_free(&te), kvi_dataset_free(&bt), kvi_dataset_free(&bte);
  }

  /* one file */
  kvi_dataset one;
  snprintf(p, sizeof p, "%s/%s", dir, names[2]);
  CHECK_OK(kvi_cifar_load_file(&one, p));
  CHECK(one.n == 4);
  if (one.n == 4) CHECK(count_bad(&one, 5) == 0);
  kvi_dataset_free(&one);
}

static void test_bad(void) {
  char dir[512], p[700], f[700];
  snprintf(dir, sizeof dir, "%s/data_cifar_bad", kvi_test_dir());
  make_dir(dir);
  kvi_dataset tr, te, one;
  static unsigned char buf[3 * 3074];

  /* size not a multiple of 3073 */
  snprintf(f, sizeof f, "%s/trunc.bin", dir);
  CHECK(write_batch(f, 0, 2));
  FILE *fp = fopen(f, "rb");
  size_t n = fp ? fread(buf, 1, sizeof buf, fp) : 0;
  if (fp) fclose(fp);
  CHECK(n == 2 * REC);
  CHECK(write_raw(f, buf, 2 * REC - 100));
  CHECK_FAILS(kvi_cifar_load_file(&one, f));
  CHECK(strstr(kvi_last_error(), "multiple of 3073") != NULL);
  CHECK(is_empty(&one));
  /* label 12 in the second record */
  buf[REC] = 12;
  CHECK(write_raw(f, buf, 2 * REC));
  CHECK_FAILS(kvi_cifar_load_file(&one, f));
  CHECK(strstr(kvi_last_error(), "label 12") != NULL && strstr(kvi_last_error(), "record 1"));
  /* CIFAR-100 sized records, empty file, missing file, a directory */
  memset(buf, 0, sizeof buf);
  CHECK(write_raw(f, buf, 3 * 3074));
  CHECK_FAILS(kvi_cifar_load_file(&one, f));
  CHECK(strstr(kvi_last_error(), "CIFAR-100") != NULL);
  CHECK(write_raw(f, buf, 0));
  CHECK_FAILS(kvi_cifar_load_file(&one, f));
  CHECK(strstr(kvi_last_error(), "empty") != NULL);
  snprintf(f, sizeof f, "%s/nothing.bin", dir);
  CHECK_FAILS(kvi_cifar_load_file(&one, f));
  CHECK_FAILS(kvi_cifar_load_file(&one, dir));
  CHECK(is_empty(&one));

  /* a bad batch inside a directory: train fails */
  snprintf(p, sizeof p, "%s/%s", dir, names[3]);
  CHECK(write_raw(p, buf, 100));
  CHECK_FAILS(kvi_cifar_load_dir(&tr, &te, dir, 0, 0));
  CHECK(strstr(kvi_last_error(), "data_batch_4.bin") != NULL);
  CHECK(is_empty(&tr) && is_empty(&te));
  /* with a limit the bad batch is never read */
  CHECK_OK(kvi_cifar_load_dir(&tr, &te, dir, 3, 0));
  CHECK(tr.n == 3);
  kvi_dataset_free(&tr);
  kvi_dataset_free(&te);
  /* a bad test batch frees the loaded train split (LeakSanitizer) */
  CHECK(write_batch(p, 0, 1));
  snprintf(p, sizeof p, "%s/%s", dir, names[5]);
  buf[0] = 10;
  CHECK(write_raw(p, buf, REC));
  CHECK_FAILS(kvi_cifar_load_dir(&tr, &te, dir, 0, 0));
  CHECK(strstr(kvi_last_error(), "label 10") != NULL);
  CHECK(is_empty(&tr) && is_empty(&te));
  /* a missing batch is named */
  remove(p);
  CHECK_FAILS(kvi_cifar_load_dir(&tr, &te, dir, 0, 0));
  CHECK(strstr(kvi_last_error(), "test_batch.bin") != NULL);
  /* missing directory, bad arguments */
  snprintf(p, sizeof p, "%s/no_such_cifar_dir", kvi_test_dir());
  CHECK_FAILS(kvi_cifar_load_dir(&tr, &te, p, 0, 0));
  CHECK(strstr(kvi_last_error(), "no_such_cifar_dir") != NULL);
  CHECK_FAILS(kvi_cifar_load_dir(&tr, &te, dir, -1, 0));
  CHECK_FAILS(kvi_cifar_load_dir(&tr, &tr, dir, 0, 0));
  CHECK_FAILS(kvi_cifar_load_dir(&tr, &te, NULL, 0, 0));
}

static void test_hflip(void) {
  /* one image c=2, h=2, w=3: value = 100c + 10r + col */
  kvi_real img[12], ref[12];
  for (int c = 0; c < 2; c++)
    for (int r = 0; r < 2; r++)
      for (int q = 0; q < 3; q++)
        img[(r * 3 + q) * 2 + c] = (kvi_real)(100 * c + 10 * r + q); /* HWC */
  memcpy(ref, img, sizeof img);
  kvi_image_hflip(img, 2, 2, 3);
  int bad = 0;
  for (int c = 0; c < 2; c++)
    for (int r = 0; r < 2; r++)
      for (int q = 0; q < 3; q++)
        bad += img[(r * 3 + q) * 2 + c] != (kvi_real)(100 * c + 10 * r + 2 - q);
  CHECK(bad == 0);
  kvi_image_hflip(img, 2, 2, 3);
  CHECK(memcmp(img, ref, sizeof img) == 0);
  /* even width */
  kvi_real e[4] = {1, 2, 3, 4};
  kvi_image_hflip(e, 1, 1, 4);
  CHECK(e[0] == 4 && e[1] == 3 && e[2] == 2 && e[3] == 1);

  /* batch: each image flipped or not; the same rng state twice = identity; about half flipped */
  enum { B = 2000, D = 12 };
  kvi_real *x = malloc(sizeof(kvi_real) * B * D), *x0 = malloc(sizeof(kvi_real) * B * D);
  for (int i = 0; i < B; i++)
    for (int j = 0; j < D; j++) x[i * D + j] = (kvi_real)(i * 1000 + ref[j]);
  memcpy(x0, x, sizeof(kvi_real) * B * D);
  kvi_rng r = kvi_rng_stream(42, 7), r0 = r;
  kvi_batch_hflip(x, B, 2, 2, 3, &r);
  CHECK(r.ctr != r0.ctr); /* the stream advanced */
  int flipped = 0, neither = 0;
  for (int i = 0; i < B; i++) {
    kvi_real tmp[D];
    memcpy(tmp, x0 + i * D, sizeof tmp);
    kvi_image_hflip(tmp, 2, 2, 3);
    bool same = memcmp(x + i * D, x0 + i * D, sizeof tmp) == 0;
    bool flip = memcmp(x + i * D, tmp, sizeof tmp) == 0;
    flipped += flip;
    neither += !same && !flip;
  }
  CHECK(neither == 0);
  CHECK(flipped > B / 2 - 150 && flipped < B / 2 + 150); /* Binomial(2000, 1/2): sd 22 */
  kvi_rng again = r0;
  kvi_batch_hflip(x, B, 2, 2, 3, &again);
  CHECK(memcmp(x, x0, sizeof(kvi_real) * B * D) == 0);
  /* NULL rng flips every image; twice is the identity */
  kvi_batch_hflip(x, B, 2, 2, 3, NULL);
  kvi_real tmp[D];
  memcpy(tmp, x0 + 5 * D, sizeof tmp);
  kvi_image_hflip(tmp, 2, 2, 3);
  CHECK(memcmp(x + 5 * D, tmp, sizeof tmp) == 0);
  kvi_batch_hflip(x, B, 2, 2, 3, NULL);
  CHECK(memcmp(x, x0, sizeof(kvi_real) * B * D) == 0);
  free(x);
  free(x0);
}

int main(void) {
  test_load();
  test_bad();
  test_hflip();
  TEST_MAIN_END();
}
