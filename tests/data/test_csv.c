/* CSV loader: a good file with header, comments, blank lines and CRLF; whitespace-separated and
 * gzipped files; ragged rows, NaN, non-numeric fields, empty files and too many targets fail
 * with the line (and column) in the message. */
#include <stdbool.h>
#include <zlib.h>

#include "kronvi/data.h"
#include "kvi_test.h"

static char *tpath(char *buf, const char *name) {
  snprintf(buf, 512, "%s/data_csv_%s", kvi_test_dir(), name);
  return buf;
}

static bool write_text(const char *path, const char *text, bool gz) {
  size_t len = strlen(text);
  if (gz) {
    gzFile f = gzopen(path, "wb");
    if (!f) return false;
    bool ok = len == 0 || gzwrite(f, text, (unsigned)len) == (int)len;
    return gzclose(f) == Z_OK && ok;
  }
  FILE *f = fopen(path, "wb");
  if (!f) return false;
  bool ok = len == 0 || fwrite(text, 1, len, f) == len;
  return fclose(f) == 0 && ok;
}

static bool is_empty(const kvi_dataset *ds) { return ds->n == 0 && !ds->x && !ds->y && !ds->t; }

/* kvi_csv_load(text) must fail; the message must contain each of the given parts. */
static void expect_fail(const char *name, const char *text, int ntargets, const char *part1,
                        const char *part2) {
  char p[512];
  CHECK(write_text(tpath(p, name), text, false));
  kvi_dataset ds;
  kvi_clear_error();
  kvi_status s = kvi_csv_load(&ds, p, ntargets);
  const char *msg = kvi_last_error();
  kvi_test_checks++;
  if (s == KVI_OK || !msg[0] || (part1 && !strstr(msg, part1)) || (part2 && !strstr(msg, part2))) {
    kvi_test_failures++;
    fprintf(stderr, "case '%s': expected a failure mentioning '%s' and '%s', got %s: %s\n", name,
            part1 ? part1 : "", part2 ? part2 : "", kvi_status_name(s), msg);
  }
  CHECK(is_empty(&ds));
  if (s == KVI_OK) kvi_dataset_free(&ds);
}

static const char *good =
    "# a comment line\n"
    "x1, x2 ,target\r\n"
    "\n"
    "  # indented comment\n"
    "1.5, -2.25, 3\n"
    "\t0.5 ,1e3,-4.75  \r\n"
    "-0, +7, 0.125\n"
    "\n"
    "2,4,8"; /* no final newline */

static const double good_vals[4][3] = {
    {1.5, -2.25, 3}, {0.5, 1e3, -4.75}, {-0.0, 7, 0.125}, {2, 4, 8}};

static void check_good(const kvi_dataset *ds, int ntargets) {
  int d = 3 - ntargets;
  CHECK(ds->n == 4 && ds->d == d && ds->k == ntargets);
  CHECK(ds->nclasses == 0 && ds->y == NULL && ds->c == 0 && ds->h == 0 && ds->w == 0);
  if (ds->n != 4 || !ds->x || !ds->t) return;
  int bad = 0;
  for (int i = 0; i < 4; i++) {
    for (int j = 0; j < d; j++) bad += ds->x[i * d + j] != (kvi_real)good_vals[i][j];
    for (int j = 0; j < ntargets; j++)
      bad += ds->t[i * ntargets + j] != (kvi_real)good_vals[i][d + j];
  }
  CHECK(bad == 0);
  CHECK_OK(kvi_dataset_validate(ds, "csv"));
}

static void test_good(void) {
  char p[512];
  kvi_dataset ds;
  CHECK(write_text(tpath(p, "good.csv"), good, false));
  CHECK_OK(kvi_csv_load(&ds, p, 1));
  check_good(&ds, 1);
  kvi_dataset_free(&ds);
  CHECK_OK(kvi_csv_load(&ds, p, 2));
  check_good(&ds, 2);
  kvi_dataset_free(&ds);
  CHECK(write_text(tpath(p, "good.csv.gz"), good, true));
  CHECK_OK(kvi_csv_load(&ds, p, 1));
  check_good(&ds, 1);
  kvi_dataset_free(&ds);

  /* whitespace-separated, no header (UCI style), a UTF-8 BOM */
  CHECK(write_text(tpath(p, "ws.txt"),
                   "\xEF\xBB\xBF"
                   "1.5 -2.25   3\n0.5\t1e3 -4.75\n  -0 +7 0.125\n2 4 8\n",
                   false));
  CHECK_OK(kvi_csv_load(&ds, p, 1));
  check_good(&ds, 1);
  kvi_dataset_free(&ds);

  /* a header whose names look partly numeric is still a header */
  CHECK(write_text(tpath(p, "hdr.csv"), "1st,2,y\n1,2,3\n", false));
  CHECK_OK(kvi_csv_load(&ds, p, 1));
  CHECK(ds.n == 1 && ds.d == 2 && ds.k == 1);
  if (ds.n == 1) CHECK(ds.x[0] == 1 && ds.x[1] == 2 && ds.t[0] == 3);
  kvi_dataset_free(&ds);

  /* many rows */
  size_t cap = 200000;
  char *big = malloc(cap);
  size_t len = 0;
  len += (size_t)snprintf(big + len, cap - len, "a,b,c,d\n");
  for (int i = 0; i < 3000; i++)
    len += (size_t)snprintf(big + len, cap - len, "%d,%d.5,%d,%d\n", i, -i, i * 2, i % 7);
  CHECK(write_text(tpath(p, "big.csv"), big, false));
  free(big);
  CHECK_OK(kvi_csv_load(&ds, p, 2));
  CHECK(ds.n == 3000 && ds.d == 2 && ds.k == 2);
  if (ds.n == 3000) {
    int bad = 0;
    for (int i = 0; i < 3000; i++) {
      bad += ds.x[2 * i] != (kvi_real)i;
      bad += ds.x[2 * i + 1] != (kvi_real)(i == 0 ? 0.5 : -i - 0.5);
      bad += ds.t[2 * i] != (kvi_real)(2 * i) || ds.t[2 * i + 1] != (kvi_real)(i % 7);
    }
    CHECK(bad == 0);
  }
  kvi_dataset_free(&ds);
}

static void test_bad(void) {
  expect_fail("ragged", "a,b,c\n1,2,3\n4,5\n6,7,8\n", 1, "line 3", "2 fields");
  expect_fail("ragged_long", "1,2,3\n4,5,6,7\n", 1, "line 2", "expected 3");
  expect_fail("nan", "a,b,c\n1,2,3\n# c\n4,NaN,6\n", 1, "line 4", "column 2");
  expect_fail("inf", "1,2,3\n4,5,-inf\n", 1, "line 2", "column 3");
  expect_fail("overflow", "1,2,3\n4,1e999,6\n", 1, "line 2", "column 2");
  expect_fail("abc", "a,b,c\n1,2,3\n4,abc,6\n", 1, "line 3", "'abc'");
  expect_fail("abc_first_data", "a,b,c\n1,x2,3\n", 1, "line 2", "column 2");
  expect_fail("trailing_junk", "1,2,3\n4,5,6 7\n", 1, "line 2", "column 3");
  expect_fail("empty_field", "1,2,3\n4,,6\n", 1, "line 2", "empty field");
  expect_fail("trailing_comma", "1,2,3,\n", 1, "line 1", "column 4");
  expect_fail("empty", "", 1, "no data rows", "empty");
  expect_fail("only_comments", "# nothing\n\n   \n#x,y\n", 1, "no data rows", NULL);
  expect_fail("only_header", "a,b,c\n", 1, "no data rows", "header");
  expect_fail("too_many_targets", "a,b,c\n1,2,3\n", 3, "ntargets=3", "3 columns");
  expect_fail("one_column", "1\n2\n", 1, "line 1", "1 column");
  expect_fail("zero_targets", "1,2\n", 0, "ntargets", NULL);
}

static void test_misc(void) {
  char p[512];
  kvi_dataset ds;
  CHECK(write_text(tpath(p, "ok2.csv"), "1,2\n3,4\n", false));
  CHECK_OK(kvi_csv_load(&ds, p, 1));
  CHECK(ds.n == 2 && ds.d == 1 && ds.k == 1);
  kvi_dataset_free(&ds);
  /* a binary file with a NUL byte */
  FILE *f = fopen(tpath(p, "nul.csv"), "wb");
  CHECK(f != NULL);
  if (f) {
    fwrite("1,2\n3,\0004\n", 1, 9, f);
    fclose(f);
  }
  CHECK_FAILS(kvi_csv_load(&ds, p, 1));
  CHECK(strstr(kvi_last_error(), "line 2") != NULL);
  CHECK(is_empty(&ds));
  /* missing file, directory, NULL arguments */
  CHECK_FAILS(kvi_csv_load(&ds, tpath(p, "missing.csv"), 1));
  CHECK(strstr(kvi_last_error(), "missing.csv") != NULL);
  CHECK_FAILS(kvi_csv_load(&ds, kvi_test_dir(), 1));
  CHECK_FAILS(kvi_csv_load(&ds, NULL, 1));
  CHECK_FAILS(kvi_csv_load(NULL, p, 1));
}

int main(void) {
  test_good();
  test_bad();
  test_misc();
  TEST_MAIN_END();
}
