/* Numeric CSV for tabular regression: features first, the last `ntargets` columns targets.
 *
 * Grammar: lines separated by '\n' (a trailing '\r' is dropped); blank lines and lines whose
 * first non-blank character is '#' are skipped. Fields are separated by ',' or, when the first
 * non-skipped line has no comma, by runs of spaces/tabs (whitespace-separated UCI files).
 * Spaces and tabs around fields are ignored. The first non-skipped line is a header when one
 * of its fields is not a number. Every field must parse completely as a finite number. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"

#define KVI_CSV_MAX_BYTES ((size_t)1 << 36)

static bool kvi__is_blank(char ch) { return ch == ' ' || ch == '\t'; }

/* Splits line (NUL-terminated, modified in place) into fields; returns the count, writing at
 * most cap field pointers. An empty field (comma mode) is returned as "". */
static int kvi__csv_split(char *line, bool comma, char **fields, int cap) {
  int nf = 0;
  char *p = line;
  if (comma) {
    for (;;) {
      char *start = p;
      while (*p && *p != ',') p++;
      char *end = p;
      bool last = *p == 0;
      while (kvi__is_blank(*start)) start++;
      while (end > start && kvi__is_blank(end[-1])) end--;
      *end = 0;
      if (nf < cap) fields[nf] = start;
      nf++;
      if (last) break;
      p++;
    }
  } else {
    for (;;) {
      while (kvi__is_blank(*p)) p++;
      if (!*p) break;
      char *start = p;
      while (*p && !kvi__is_blank(*p)) p++;
      bool last = *p == 0;
      *p = 0;
      if (nf < cap) fields[nf] = start;
      nf++;
      if (last) break;
      p++;
    }
  }
  return nf;
}

/* 1: a complete number (finite or not) in *v, 0: not a number or empty. */
static int kvi__csv_number(const char *f, double *v) {
  if (!*f) return 0;
  char *end = NULL;
  errno = 0;
  *v = strtod(f, &end);
  return end != f && *end == 0;
}

typedef struct {
  double *v;
  size_t n, cap;
} kvi__dvec;

static bool kvi__dvec_push(kvi__dvec *a, double x) {
  if (a->n == a->cap) {
    size_t nc = a->cap ? 2 * a->cap : 4096;
    double *nv = realloc(a->v, nc * sizeof *nv);
    if (!nv) return false;
    a->v = nv;
    a->cap = nc;
  }
  a->v[a->n++] = x;
  return true;
}

kvi_status kvi_csv_load(kvi_dataset *out, const char *path, int ntargets) {
  if (!out) return kvi_fail(KVI_ERR_ARG, "kvi_csv_load: output dataset is NULL");
  kvi_dataset_init(out);
  if (ntargets < 1)
    return kvi_fail(KVI_ERR_ARG,
                    "kvi_csv_load: expected ntargets >= 1 (the last ntargets columns are the "
                    "regression targets), got %d",
                    ntargets);
  kvi__reader r;
  kvi_status s = kvi__reader_open(&r, path, "CSV file");
  if (s != KVI_OK) return s;
  unsigned char *buf = NULL;
  size_t len = 0;
  s = kvi__reader_read_all(&r, KVI_CSV_MAX_BYTES, &buf, &len);
  if (s == KVI_OK && len == KVI_CSV_MAX_BYTES)
    s = kvi__reader_expect_end(&r, "CSV files are limited to 64 GiB");
  kvi__reader_close(&r);
  if (s != KVI_OK) return s;

  char *text = (char *)buf; /* buf has a spare byte after the data */
  if (len >= 3 && buf[0] == 0xEF && buf[1] == 0xBB && buf[2] == 0xBF) text += 3; /* UTF-8 BOM */

  kvi__dvec vals = {0};
  char **fields = NULL;
  int ncols = -1, cap = 0;
  bool comma = true;
  long long lineno = 0, first_line = 0;
  int64_t nrows = 0;
  char *p = text, *end = (char *)buf + len;
  while (s == KVI_OK && p < end) {
    char *line = p;
    char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t ll = (size_t)((nl ? nl : end) - p);
    p = nl ? nl + 1 : end;
    line[ll] = 0; /* the '\n', or the spare byte after the data */
    lineno++;
    if (ll > 0 && line[ll - 1] == '\r') line[--ll] = 0;
    if (memchr(line, 0, ll) != NULL) {
      s = kvi_fail(KVI_ERR_FORMAT, "CSV file '%s', line %lld: contains a NUL byte (binary file?)",
                   path, lineno);
      break;
    }
    const char *q = line;
    while (kvi__is_blank(*q)) q++;
    if (*q == 0 || *q == '#') continue;
    if (ncols < 0) comma = strchr(line, ',') != NULL;
    /* a line of ll characters has at most ll + 1 fields */
    if (ll + 1 > (size_t)cap) {
      if (ll + 1 > (size_t)1 << 30) {
        s = kvi_fail(KVI_ERR_FORMAT, "CSV file '%s', line %lld is too long (%zu bytes)", path,
                     lineno, ll);
        break;
      }
      char **nf = realloc(fields, (ll + 1) * sizeof *nf);
      if (!nf) {
        s = kvi_fail(KVI_ERR_NOMEM, "out of memory parsing CSV file '%s'", path);
        break;
      }
      fields = nf;
      cap = (int)(ll + 1);
    }
    int nfld = kvi__csv_split(line, comma, fields, cap);
    if (ncols < 0) {
      /* first line: a header if any non-empty field is not a number */
      bool header = false;
      for (int j = 0; j < nfld && j < cap; j++) {
        double v;
        if (fields[j][0] && !kvi__csv_number(fields[j], &v)) header = true;
      }
      ncols = nfld;
      first_line = lineno;
      if (ntargets >= ncols) {
        s = kvi_fail(KVI_ERR_SHAPE,
                     "CSV file '%s', line %lld: %d column%s, but ntargets=%d; expected more "
                     "columns than targets (the last ntargets columns are targets, the rest "
                     "features)%s",
                     path, lineno, ncols, ncols == 1 ? "" : "s", ntargets,
                     (!comma && ncols == 1) ? "\nHINT: fields must be separated by commas or "
                                              "spaces"
                                            : "");
        break;
      }
      if (header) continue;
    }
    if (nfld != ncols) {
      s = kvi_fail(
          KVI_ERR_FORMAT,
          "CSV file '%s', line %lld: %d fields, expected %d (as on line %lld)\nHINT: every "
          "row needs the same number of %s-separated columns",
          path, lineno, nfld, ncols, first_line, comma ? "comma" : "whitespace");
      break;
    }
    for (int j = 0; j < nfld; j++) {
      double v;
      if (!fields[j][0]) {
        s = kvi_fail(KVI_ERR_FORMAT, "CSV file '%s', line %lld, column %d: empty field", path,
                     lineno, j + 1);
        break;
      }
      if (!kvi__csv_number(fields[j], &v)) {
        s = kvi_fail(KVI_ERR_FORMAT,
                     "CSV file '%s', line %lld, column %d: '%.40s' is not a number%s", path, lineno,
                     j + 1, fields[j],
                     nrows == 0 && lineno != first_line
                         ? "\nHINT: only the first non-comment line may be a header"
                         : "");
        break;
      }
      kvi_real rv = (kvi_real)v;
      if (!isfinite(v) || !isfinite(rv)) {
        s = kvi_fail(KVI_ERR_NONFINITE,
                     "CSV file '%s', line %lld, column %d: '%.40s' is not a finite number%s%s",
                     path, lineno, j + 1, fields[j], isfinite(v) ? " in " KVI_REAL_NAME : "",
                     "\nHINT: remove or impute missing values (NaN) before loading");
        break;
      }
      if (!kvi__dvec_push(&vals, v)) {
        s = kvi_fail(KVI_ERR_NOMEM, "out of memory parsing CSV file '%s'", path);
        break;
      }
    }
    if (s == KVI_OK) nrows++;
  }
  free(fields);
  free(buf);
  if (s == KVI_OK && nrows == 0)
    s = kvi_fail(KVI_ERR_FORMAT, "CSV file '%s' has no data rows%s", path,
                 ncols < 0 ? " (it is empty or holds only comments and blank lines)"
                           : " (only a header line)");
  int d = ncols - ntargets;
  if (s == KVI_OK) s = kvi_dataset_alloc(out, nrows, d, 0, 0, 0, 0, ntargets);
  if (s == KVI_OK) {
    for (int64_t i = 0; i < nrows; i++) {
      const double *row = vals.v + (size_t)i * (size_t)ncols;
      for (int j = 0; j < d; j++) out->x[(size_t)i * (size_t)d + (size_t)j] = (kvi_real)row[j];
      for (int j = 0; j < ntargets; j++)
        out->t[(size_t)i * (size_t)ntargets + (size_t)j] = (kvi_real)row[d + j];
    }
  }
  free(vals.v);
  return s;
}
