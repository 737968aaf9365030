/* safetensors reader/writer (the atomic file writer it uses is in file.c).
 *
 * Format (https://github.com/huggingface/safetensors): u64 little-endian N, N bytes of JSON
 * header, data region. The reader validates everything the reference implementation does
 * (dtype, shape x dtype size == span, offsets tiling the data region) before handing out data,
 * and gives each tensor a 64-byte aligned copy in host byte order. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/io.h"
#include "io/io_internal.h"

/* ======================================================================================= */
/* dtypes, byte order                                                                      */
/* ======================================================================================= */

static const struct {
  const char *name;
  size_t size;
} DTYPES[] = {{"F64", 8}, {"F32", 4}, {"F16", 2},  {"BF16", 2},    {"I64", 8},
              {"I32", 4}, {"I16", 2}, {"I8", 1},   {"U64", 8},     {"U32", 4},
              {"U16", 2}, {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
#define NDTYPES (sizeof DTYPES / sizeof DTYPES[0])
#define DTYPE_LIST \
  "F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2"

static int dtype_index(const char *name) {
  if (!name) return -1;
  for (size_t i = 0; i < NDTYPES; i++)
    if (strcmp(DTYPES[i].name, name) == 0) return (int)i;
  return -1;
}

size_t kvi_st_dtype_size(const char *dtype) {
  int i = dtype_index(dtype);
  return i < 0 ? 0 : DTYPES[i].size;
}

/* prod(shape) with overflow checks; -1 if a dim is negative or the product overflows. */
static int64_t shape_numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0) return -1;
    if (shape[d] && n > INT64_MAX / shape[d]) return -1;
    n *= shape[d];
  }
  return n;
}

int64_t kvi_st_numel(const kvi_st_tensor *t) {
  if (!t || t->ndim < 0 || t->ndim > KVI_ST_MAX_DIMS) return 0;
  int64_t n = shape_numel(t->ndim, t->shape);
  return n < 0 ? 0 : n;
}

size_t kvi_st_nbytes(const kvi_st_tensor *t) {
  size_t es = t ? kvi_st_dtype_size(t->dtype) : 0;
  int64_t n = kvi_st_numel(t);
  if (!es || (uint64_t)n > SIZE_MAX / es) return 0;
  return (size_t)n * es;
}

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
  size_t k = (size_t)snprintf(buf, cap, "[");
  for (int d = 0; d < ndim && k < cap; d++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
  if (k < cap) snprintf(buf + k, cap - k, "]");
}

static bool host_is_le(void) {
  const uint16_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

static void swap_bytes(unsigned char *p, size_t nbytes, size_t es) {
  for (size_t i = 0; i + es <= nbytes; i += es)
    for (size_t a = 0, b = es - 1; a < b; a++, b--) {
      unsigned char t = p[i + a];
      p[i + a] = p[i + b];
      p[i + b] = t;
    }
}

/* ======================================================================================= */
/* writer                                                                                  */
/* ======================================================================================= */

static int cmp_str_ptr(const void *a, const void *b) {
  return strcmp(**(const char *const *const *)a, **(const char *const *const *)b);
}

/* Index of a duplicate among strs[0..n) (sets *first to the index it repeats), -1 if none. */
static int find_duplicate(const char *const *strs, int n, int *first, bool *nomem) {
  *nomem = false;
  if (n < 2) return -1;
  const char *const **idx = malloc((size_t)n * sizeof *idx);
  if (!idx) {
    *nomem = true;
    return -1;
  }
  for (int i = 0; i < n; i++) idx[i] = &strs[i];
  qsort(idx, (size_t)n, sizeof *idx, cmp_str_ptr);
  int dup = -1;
  for (int i = 1; i < n && dup < 0; i++)
    if (strcmp(*idx[i], *idx[i - 1]) == 0) {
      int a = (int)(idx[i] - strs), b = (int)(idx[i - 1] - strs);
      dup = a > b ? a : b;
      *first = a > b ? b : a;
    }
  free(idx);
  return dup;
}

static kvi_status write_le(kvi_atomic_file *af, const void *data, size_t nbytes, size_t es) {
  if (host_is_le() || es == 1) return kvi_atomic_write(af, data, nbytes);
  unsigned char buf[1 << 14];
  const unsigned char *p = data;
  for (size_t off = 0; off < nbytes; off += sizeof buf) {
    size_t n = nbytes - off < sizeof buf ? nbytes - off : sizeof buf;
    memcpy(buf, p + off, n);
    swap_bytes(buf, n, es);
    kvi_status st = kvi_atomic_write(af, buf, n);
    if (st != KVI_OK) return st;
  }
  return KVI_OK;
}

kvi_status kvi_safetensors_write(const char *path, const kvi_st_tensor *tensors, int n,
                                 const char *const *meta_keys, const char *const *meta_values,
                                 int nmeta) {
  if (!path || !path[0]) return kvi_fail(KVI_ERR_ARG, "kvi_safetensors_write: empty file name");
  if (n < 0 || (n > 0 && !tensors))
    return kvi_fail(KVI_ERR_ARG, "%s: invalid tensor list (n = %d, tensors = %p)", path, n,
                    (const void *)tensors);
  if (nmeta < 0 || (nmeta > 0 && (!meta_keys || !meta_values)))
    return kvi_fail(KVI_ERR_ARG, "%s: invalid metadata list (nmeta = %d)", path, nmeta);
  uint64_t total = 0;
  for (int i = 0; i < n; i++) {
    const kvi_st_tensor *t = &tensors[i];
    if (!t->name || !t->name[0])
      return kvi_fail(KVI_ERR_ARG, "%s: tensor %d has an empty name", path, i);
    if (strcmp(t->name, "__metadata__") == 0)
      return kvi_fail(KVI_ERR_ARG, "%s: tensor %d may not be named \"__metadata__\" (reserved)",
                      path, i);
    if (dtype_index(t->dtype) < 0)
      return kvi_fail(KVI_ERR_ARG,
                      "%s: tensor \"%s\" has unknown dtype \"%s\" (expected one of %s)", path,
                      t->name, t->dtype ? t->dtype : "(null)", DTYPE_LIST);
    if (t->ndim < 0 || t->ndim > KVI_ST_MAX_DIMS)
      return kvi_fail(KVI_ERR_ARG, "%s: tensor \"%s\" has ndim %d (expected 0..%d)", path, t->name,
                      t->ndim, KVI_ST_MAX_DIMS);
    char shp[200];
    format_shape(shp, sizeof shp, t->ndim, t->shape);
    if (shape_numel(t->ndim, t->shape) < 0)
      return kvi_fail(KVI_ERR_ARG, "%s: tensor \"%s\" has invalid shape %s (negative or too large)",
                      path, t->name, shp);
    size_t nb = kvi_st_nbytes(t);
    if (nb == 0 && kvi_st_numel(t) > 0)
      return kvi_fail(KVI_ERR_ARG, "%s: tensor \"%s\" of shape %s is too large", path, t->name,
                      shp);
    if (nb > 0 && !t->data)
      return kvi_fail(KVI_ERR_ARG, "%s: tensor \"%s\" of shape %s has NULL data", path, t->name,
                      shp);
    if (nb > UINT64_MAX / 2 - total)
      return kvi_fail(KVI_ERR_ARG, "%s: total tensor size overflows", path);
    total += nb;
  }
  for (int i = 0; i < nmeta; i++)
    if (!meta_keys[i] || !meta_values[i])
      return kvi_fail(KVI_ERR_ARG, "%s: metadata entry %d has a NULL %s", path, i,
                      meta_keys[i] ? "value" : "key");
  /* unique names and keys */
  const char **names = malloc(((size_t)n + 1) * sizeof *names);
  if (!names) return kvi_fail(KVI_ERR_NOMEM, "%s: out of memory", path);
  for (int i = 0; i < n; i++) names[i] = tensors[i].name;
  int first = 0;
  bool oom;
  int dup = find_duplicate(names, n, &first, &oom);
  free(names);
  if (oom) return kvi_fail(KVI_ERR_NOMEM, "%s: out of memory", path);
  if (dup >= 0)
    return kvi_fail(KVI_ERR_ARG,
                    "%s: tensors %d and %d are both named \"%s\" (names must be unique)", path,
                    first, dup, tensors[dup].name);
  dup = find_duplicate(meta_keys, nmeta, &first, &oom);
  if (oom) return kvi_fail(KVI_ERR_NOMEM, "%s: out of memory", path);
  if (dup >= 0)
    return kvi_fail(KVI_ERR_ARG, "%s: metadata key \"%s\" appears twice (entries %d and %d)", path,
                    meta_keys[dup], first, dup);

  /* header */
  kvi_json_buf jb;
  kvi_jb_init(&jb, false);
  kvi_jb_begin_object(&jb);
  if (nmeta > 0) {
    kvi_jb_key(&jb, "__metadata__");
    kvi_jb_begin_object(&jb);
    for (int i = 0; i < nmeta; i++) kvi_jb_kv_str(&jb, meta_keys[i], meta_values[i]);
    kvi_jb_end_object(&jb);
  }
  uint64_t off = 0;
  for (int i = 0; i < n; i++) {
    const kvi_st_tensor *t = &tensors[i];
    uint64_t nb = kvi_st_nbytes(t);
    kvi_jb_key(&jb, t->name);
    kvi_jb_begin_object(&jb);
    kvi_jb_kv_str(&jb, "dtype", DTYPES[dtype_index(t->dtype)].name);
    kvi_jb_key(&jb, "shape");
    kvi_jb_begin_array(&jb);
    for (int d = 0; d < t->ndim; d++) kvi_jb_int(&jb, t->shape[d]);
    kvi_jb_end_array(&jb);
    kvi_jb_key(&jb, "data_offsets");
    kvi_jb_begin_array(&jb);
    kvi_jb_int(&jb, (int64_t)off);
    kvi_jb_int(&jb, (int64_t)(off + nb));
    kvi_jb_end_array(&jb);
    kvi_jb_end_object(&jb);
    off += nb;
  }
  kvi_jb_end_object(&jb);
  char *hdr;
  size_t hlen;
  kvi_status st = kvi_jb_take(&jb, &hdr, &hlen);
  if (st != KVI_OK) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s", kvi_last_error());
    return kvi_fail(st, "%s: cannot build the header: %s", path, msg);
  }
  size_t padded = (hlen + 7) / 8 * 8;
  if (padded > KVI_ST_MAX_HEADER) {
    free(hdr);
    return kvi_fail(KVI_ERR_ARG, "%s: header of %zu bytes exceeds the %u-byte limit of the format",
                    path, padded, KVI_ST_MAX_HEADER);
  }
  char *ph = realloc(hdr, padded + 1);
  if (!ph) {
    free(hdr);
    return kvi_fail(KVI_ERR_NOMEM, "%s: out of memory", path);
  }
  memset(ph + hlen, ' ', padded - hlen);
  unsigned char len8[8];
  for (int k = 0; k < 8; k++) len8[k] = (unsigned char)((uint64_t)padded >> (8 * k));

  kvi_atomic_file *af;
  st = kvi_atomic_open(&af, path);
  if (st == KVI_OK) {
    st = kvi_atomic_write(af, len8, 8);
    if (st == KVI_OK) st = kvi_atomic_write(af, ph, padded);
    for (int i = 0; i < n && st == KVI_OK; i++)
      st = write_le(af, tensors[i].data, kvi_st_nbytes(&tensors[i]),
                    kvi_st_dtype_size(tensors[i].dtype));
    if (st == KVI_OK)
      st = kvi_atomic_commit(af);
    else
      kvi_atomic_abort(af);
  }
  free(ph);
  return st;
}

/* ======================================================================================= */
/* reader                                                                                  */
/* ======================================================================================= */

struct kvi_st_file {
  char *path;
  kvi_json *hdr; /* owns the name, dtype-independent and metadata strings */
  int n;
  kvi_st_tensor *t; /* header order */
  int *by_name;     /* indices sorted by name */
  int nmeta;
  const char **mkeys, **mvals;
  void *data; /* kvi_alloc block holding every tensor, each 64-byte aligned */
};

void kvi_safetensors_close(kvi_st_file *f) {
  if (!f) return;
  kvi_json_free(f->hdr);
  free(f->t);
  free(f->by_name);
  free(f->mkeys);
  free(f->mvals);
  if (f->data) kvi_free(f->data);
  free(f->path);
  free(f);
}

/* "\nHINT: ..." for a file that failed the length checks: the format its first bytes suggest, a
 * text file, or a truncated safetensors file (a plausible header length larger than the file). */
static const char *magic_hint(char *buf, size_t cap, const unsigned char *b, size_t n,
                              uint64_t hlen, long long fsize) {
  if (n >= 4 && memcmp(b, "\x89PNG", 4) == 0) return "\nHINT: the file starts like a PNG image";
  if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
    return "\nHINT: the file starts like a gzip file; decompress it first";
  if (n >= 4 && memcmp(b, "PK\x03\x04", 4) == 0)
    return "\nHINT: the file is a zip archive (a PyTorch .pt/.pth checkpoint?); convert it with "
           "safetensors.torch.save_file";
  if (n >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5)
    return "\nHINT: the file starts like a Python pickle";
  if (n >= 4 && memcmp(b, "GGUF", 4) == 0) return "\nHINT: the file is a GGUF model";
  if (n >= 6 && memcmp(b, "\x93NUMPY", 6) == 0) return "\nHINT: the file is a NumPy .npy array";
  if (n >= 4 && memcmp(b, "\x89HDF", 4) == 0) return "\nHINT: the file is an HDF5 file";
  if (n >= 4 && b[0] == 0 && b[1] == 0 && b[2] >= 0x08 && b[2] <= 0x0e && b[3] >= 1 && b[3] <= 4)
    return "\nHINT: the file starts like an IDX data file (MNIST format)";
  if (n >= 1 && (b[0] == '{' || b[0] == '['))
    return "\nHINT: the file looks like plain JSON, not safetensors";
  bool text = n == 8;
  for (size_t i = 0; i < n && text; i++)
    text = (b[i] >= 0x20 && b[i] < 0x7f) || b[i] == '\n' || b[i] == '\t' || b[i] == '\r';
  if (text) {
    char shown[9] = {0};
    for (size_t i = 0; i < 8; i++) shown[i] = (b[i] >= 0x20 && b[i] < 0x7f) ? (char)b[i] : '.';
    snprintf(buf, cap,
             "\nHINT: the file starts with text (\"%s\"), not with a binary header length", shown);
    return buf;
  }
  if (n == 8 && hlen <= KVI_ST_MAX_HEADER && fsize >= 8 && hlen > (uint64_t)fsize - 8) {
    snprintf(buf, cap,
             "\nHINT: the file looks truncated: its header alone needs %llu bytes after the "
             "length",
             (unsigned long long)hlen);
    return buf;
  }
  return "\nHINT: the file is truncated or is not a safetensors file";
}

typedef struct {
  uint64_t beg, end;
  int idx;
} span;

static int cmp_span(const void *a, const void *b) {
  const span *x = a, *y = b;
  if (x->beg != y->beg) return x->beg < y->beg ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

typedef struct {
  const char *name;
  int idx;
} named;

static int cmp_named(const void *a, const void *b) {
  return strcmp(((const named *)a)->name, ((const named *)b)->name);
}

static bool json_u64(const kvi_json *v, uint64_t *out) {
  int64_t x;
  if (!kvi_json_int(v, &x) || x < 0) return false;
  *out = (uint64_t)x;
  return true;
}

#define ST_BAD(...)                             \
  do {                                          \
    st = kvi_fail(KVI_ERR_FORMAT, __VA_ARGS__); \
    goto fail;                                  \
  } while (0)

/* Validates one header entry into t/sp. data_size: bytes in the data region. */
static kvi_status parse_entry(kvi_st_tensor *t, span *sp, const char *path, const char *name,
                              const kvi_json *e, uint64_t data_size) {
  kvi_status st = KVI_OK;
  if (kvi_json_kind(e) != KVI_JSON_OBJECT)
    ST_BAD(
        "%s: tensor \"%s\": expected an object {\"dtype\", \"shape\", \"data_offsets\"}, "
        "found %s",
        path, name, kvi_json_type_name(kvi_json_kind(e)));
  const kvi_json *jd = kvi_json_get(e, "dtype"), *js = kvi_json_get(e, "shape"),
                 *jo = kvi_json_get(e, "data_offsets");
  if (!jd || !js || !jo)
    ST_BAD("%s: tensor \"%s\": missing \"%s\"", path, name,
           !jd   ? "dtype"
           : !js ? "shape"
                 : "data_offsets");
  int di = dtype_index(kvi_json_str(jd));
  if (di < 0)
    ST_BAD("%s: tensor \"%s\": unknown dtype %s%s%s (expected one of %s)", path, name,
           kvi_json_str(jd) ? "\"" : "", kvi_json_str(jd) ? kvi_json_str(jd) : "(not a string)",
           kvi_json_str(jd) ? "\"" : "", DTYPE_LIST);
  t->dtype = DTYPES[di].name;
  if (kvi_json_kind(js) != KVI_JSON_ARRAY)
    ST_BAD("%s: tensor \"%s\": \"shape\" must be an array, found %s", path, name,
           kvi_json_type_name(kvi_json_kind(js)));
  if (kvi_json_len(js) > KVI_ST_MAX_DIMS)
    ST_BAD("%s: tensor \"%s\": %zu dimensions, at most %d are supported", path, name,
           kvi_json_len(js), KVI_ST_MAX_DIMS);
  t->ndim = (int)kvi_json_len(js);
  for (int d = 0; d < t->ndim; d++) {
    uint64_t x;
    if (!json_u64(kvi_json_at(js, (size_t)d), &x) || x > (uint64_t)INT64_MAX)
      ST_BAD("%s: tensor \"%s\": shape[%d] is not a non-negative integer", path, name, d);
    t->shape[d] = (int64_t)x;
  }
  char shp[200];
  format_shape(shp, sizeof shp, t->ndim, t->shape);
  if (kvi_json_kind(jo) != KVI_JSON_ARRAY || kvi_json_len(jo) != 2 ||
      !json_u64(kvi_json_at(jo, 0), &sp->beg) || !json_u64(kvi_json_at(jo, 1), &sp->end))
    ST_BAD("%s: tensor \"%s\": \"data_offsets\" must be [begin, end] with non-negative integers",
           path, name);
  if (sp->beg > sp->end)
    ST_BAD("%s: tensor \"%s\": data_offsets [%llu, %llu] has begin > end", path, name,
           (unsigned long long)sp->beg, (unsigned long long)sp->end);
  if (sp->end > data_size)
    ST_BAD(
        "%s: tensor \"%s\": data_offsets [%llu, %llu] extend past the data region of %llu "
        "bytes\nHINT: the file is truncated or its header is wrong",
        path, name, (unsigned long long)sp->beg, (unsigned long long)sp->end,
        (unsigned long long)data_size);
  int64_t numel = shape_numel(t->ndim, t->shape);
  uint64_t need = 0;
  bool overflow = numel < 0 || (uint64_t)numel > UINT64_MAX / DTYPES[di].size;
  if (!overflow) need = (uint64_t)numel * DTYPES[di].size;
  if (overflow || need != sp->end - sp->beg)
    ST_BAD(
        "%s: tensor \"%s\": shape %s of %s needs %s%llu bytes, but data_offsets [%llu, %llu] "
        "span %llu",
        path, name, shp, t->dtype, overflow ? "more than " : "",
        (unsigned long long)(overflow ? UINT64_MAX : need), (unsigned long long)sp->beg,
        (unsigned long long)sp->end, (unsigned long long)(sp->end - sp->beg));
fail:
  return st;
}

kvi_status kvi_safetensors_open(kvi_st_file **out, const char *path) {
  if (!out) return kvi_fail(KVI_ERR_ARG, "kvi_safetensors_open: NULL output pointer");
  *out = NULL;
  FILE *fp = NULL;
  long long fsize = 0;
  kvi_status st = kvi__open_regular(&fp, &fsize, path);
  if (st != KVI_OK) return st;
  kvi_st_file *f = calloc(1, sizeof *f);
  char *hbuf = NULL;
  span *spans = NULL;
  named *byname = NULL;
  if (!f || !(f->path = kvi__dup_str(path))) {
    st = kvi_fail(KVI_ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  unsigned char head[8] = {0};
  char hint[160];
  size_t got = fread(head, 1, 8, fp);
  if (fsize < 8 || got < 8)
    ST_BAD(
        "%s: not a safetensors file (file is %lld bytes, shorter than the 8-byte header "
        "length)%s",
        path, fsize, fsize > 0 ? magic_hint(hint, sizeof hint, head, got, 0, fsize) : "");
  uint64_t hlen = 0;
  for (int k = 0; k < 8; k++) hlen |= (uint64_t)head[k] << (8 * k);
  if (hlen > (uint64_t)fsize - 8)
    ST_BAD("%s: not a safetensors file (header length %llu exceeds file size %lld)%s", path,
           (unsigned long long)hlen, fsize, magic_hint(hint, sizeof hint, head, 8, hlen, fsize));
  if (hlen > KVI_ST_MAX_HEADER)
    ST_BAD("%s: not a safetensors file (header length %llu exceeds the %u-byte limit)%s", path,
           (unsigned long long)hlen, KVI_ST_MAX_HEADER,
           magic_hint(hint, sizeof hint, head, 8, hlen, fsize));
  if (hlen < 2)
    ST_BAD("%s: not a safetensors file (header length %llu is too small for a JSON object)%s", path,
           (unsigned long long)hlen, magic_hint(hint, sizeof hint, head, 8, hlen, fsize));
  hbuf = malloc((size_t)hlen);
  if (!hbuf) {
    st = kvi_fail(KVI_ERR_NOMEM, "%s: out of memory for a %llu-byte header", path,
                  (unsigned long long)hlen);
    goto fail;
  }
  if (fread(hbuf, 1, (size_t)hlen, fp) != (size_t)hlen) {
    st =
        kvi_fail(KVI_ERR_IO, "%s: cannot read the %llu-byte header: %s", path,
                 (unsigned long long)hlen, ferror(fp) ? strerror(errno) : "unexpected end of file");
    goto fail;
  }
  if (hbuf[0] != '{')
    ST_BAD("%s: not a safetensors file (header does not start with '{', found byte 0x%02x)%s", path,
           (unsigned char)hbuf[0], magic_hint(hint, sizeof hint, head, 8, hlen, fsize));
  st = kvi_json_parse(&f->hdr, hbuf, (size_t)hlen);
  free(hbuf);
  hbuf = NULL;
  if (st != KVI_OK) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s", kvi_last_error());
    ST_BAD("%s: header (%llu bytes after the length) is not valid JSON: %s", path,
           (unsigned long long)hlen, msg);
  }
  if (kvi_json_kind(f->hdr) != KVI_JSON_OBJECT)
    ST_BAD("%s: header is a JSON %s, expected an object", path,
           kvi_json_type_name(kvi_json_kind(f->hdr)));
  uint64_t data_size = (uint64_t)fsize - 8 - hlen;
  size_t nmem = kvi_json_len(f->hdr);
  if (nmem > (size_t)INT32_MAX) ST_BAD("%s: too many header entries (%zu)", path, nmem);
  f->t = calloc(nmem ? nmem : 1, sizeof *f->t);
  spans = calloc(nmem ? nmem : 1, sizeof *spans);
  byname = calloc(nmem ? nmem : 1, sizeof *byname);
  if (!f->t || !spans || !byname) {
    st = kvi_fail(KVI_ERR_NOMEM, "%s: out of memory for %zu tensors", path, nmem);
    goto fail;
  }
  for (size_t m = 0; m < nmem; m++) {
    const char *key = kvi_json_key_at(f->hdr, m);
    const kvi_json *e = kvi_json_at(f->hdr, m);
    if (strcmp(key, "__metadata__") == 0) {
      if (kvi_json_is_null(e)) continue;
      if (kvi_json_kind(e) != KVI_JSON_OBJECT)
        ST_BAD("%s: \"__metadata__\" must be an object of strings, found %s", path,
               kvi_json_type_name(kvi_json_kind(e)));
      size_t nm = kvi_json_len(e);
      f->mkeys = calloc(nm ? nm : 1, sizeof *f->mkeys);
      f->mvals = calloc(nm ? nm : 1, sizeof *f->mvals);
      if (!f->mkeys || !f->mvals) {
        st = kvi_fail(KVI_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
      }
      for (size_t k = 0; k < nm; k++) {
        f->mkeys[k] = kvi_json_key_at(e, k);
        f->mvals[k] = kvi_json_str(kvi_json_at(e, k));
        if (!f->mvals[k])
          ST_BAD("%s: \"__metadata__\" value of \"%s\" must be a string, found %s", path,
                 f->mkeys[k], kvi_json_type_name(kvi_json_kind(kvi_json_at(e, k))));
        if (strlen(f->mkeys[k]) != kvi_json_key_len(e, k) ||
            strlen(f->mvals[k]) != kvi_json_str_len(kvi_json_at(e, k)))
          ST_BAD("%s: \"__metadata__\" entry \"%s\" contains a NUL character (\\u0000)", path,
                 f->mkeys[k]);
      }
      f->nmeta = (int)nm;
      continue;
    }
    if (strlen(key) != kvi_json_key_len(f->hdr, m))
      ST_BAD("%s: a tensor name contains a NUL character (\\u0000) after \"%s\"", path, key);
    kvi_st_tensor *t = &f->t[f->n];
    t->name = key;
    st = parse_entry(t, &spans[f->n], path, key, e, data_size);
    if (st != KVI_OK) goto fail;
    spans[f->n].idx = f->n;
    byname[f->n].name = key;
    byname[f->n].idx = f->n;
    f->n++;
  }
  /* the tensors must tile [0, data_size) */
  qsort(spans, (size_t)f->n, sizeof *spans, cmp_span);
  uint64_t pos = 0;
  int prev = -1; /* the span that ended at pos */
  for (int k = 0; k < f->n; k++) {
    const span *s = &spans[k];
    if (s->beg < pos)
      ST_BAD("%s: tensors \"%s\" [%llu, %llu] and \"%s\" [%llu, %llu] overlap in the data region",
             path, f->t[spans[prev].idx].name, (unsigned long long)spans[prev].beg,
             (unsigned long long)spans[prev].end, f->t[s->idx].name, (unsigned long long)s->beg,
             (unsigned long long)s->end);
    if (s->beg > pos)
      ST_BAD("%s: bytes [%llu, %llu) of the data region belong to no tensor (before \"%s\")", path,
             (unsigned long long)pos, (unsigned long long)s->beg, f->t[s->idx].name);
    if (s->end > pos || prev < 0) prev = k;
    pos = s->end;
  }
  if (pos != data_size)
    ST_BAD(
        "%s: the data region has %llu bytes but the tensors cover only %llu\nHINT: extra bytes "
        "after the last tensor: a corrupt or foreign file",
        path, (unsigned long long)data_size, (unsigned long long)pos);
  /* read the data, each tensor into its own 64-byte aligned slot, in file order */
  uint64_t total = 0;
  for (int k = 0; k < f->n; k++) {
    uint64_t nb = spans[k].end - spans[k].beg;
    if (nb > UINT64_MAX - total - 64) ST_BAD("%s: tensors too large", path);
    total += (nb + 63) / 64 * 64;
  }
  if (total > SIZE_MAX) ST_BAD("%s: tensors too large for this machine", path);
  if (total) {
    f->data = kvi_alloc((size_t)total);
    if (!f->data) {
      st = kvi_fail(KVI_ERR_NOMEM, "%s: out of memory for %llu bytes of tensor data", path,
                    (unsigned long long)total);
      goto fail;
    }
  }
  uint64_t slot = 0;
  bool swap = !host_is_le();
  for (int k = 0; k < f->n; k++) {
    kvi_st_tensor *t = &f->t[spans[k].idx];
    size_t nb = (size_t)(spans[k].end - spans[k].beg);
    if (nb == 0) continue;
    unsigned char *dst = (unsigned char *)f->data + slot;
    if (fread(dst, 1, nb, fp) != nb) {
      st = kvi_fail(KVI_ERR_IO, "%s: cannot read tensor \"%s\" (%zu bytes at offset %llu): %s",
                    path, t->name, nb, (unsigned long long)(8 + hlen + spans[k].beg),
                    ferror(fp) ? strerror(errno) : "unexpected end of file (file changed?)");
      goto fail;
    }
    if (swap) swap_bytes(dst, nb, kvi_st_dtype_size(t->dtype));
    t->data = dst;
    slot += (nb + 63) / 64 * 64;
  }
  qsort(byname, (size_t)f->n, sizeof *byname, cmp_named);
  for (int k = 1; k < f->n; k++)
    if (strcmp(byname[k].name, byname[k - 1].name) == 0)
      ST_BAD("%s: two tensors are named \"%s\"", path, byname[k].name);
  f->by_name = malloc(((size_t)f->n + 1) * sizeof *f->by_name);
  if (!f->by_name) {
    st = kvi_fail(KVI_ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  for (int k = 0; k < f->n; k++) f->by_name[k] = byname[k].idx;
  free(spans);
  free(byname);
  fclose(fp);
  *out = f;
  return KVI_OK;
fail:
  free(hbuf);
  free(spans);
  free(byname);
  if (fp) fclose(fp);
  kvi_safetensors_close(f);
  return st;
}

int kvi_st_count(const kvi_st_file *f) { return f ? f->n : 0; }

const kvi_st_tensor *kvi_st_at(const kvi_st_file *f, int i) {
  return (f && i >= 0 && i < f->n) ? &f->t[i] : NULL;
}

const kvi_st_tensor *kvi_st_get(const kvi_st_file *f, const char *name) {
  if (!f || !name) return NULL;
  int lo = 0, hi = f->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    const kvi_st_tensor *t = &f->t[f->by_name[mid]];
    int c = strcmp(name, t->name);
    if (c == 0) return t;
    if (c < 0)
      hi = mid - 1;
    else
      lo = mid + 1;
  }
  return NULL;
}

const char *kvi_st_meta(const kvi_st_file *f, const char *key) {
  if (!f || !key) return NULL;
  for (int i = 0; i < f->nmeta; i++)
    if (strcmp(f->mkeys[i], key) == 0) return f->mvals[i];
  return NULL;
}

int kvi_st_meta_count(const kvi_st_file *f) { return f ? f->nmeta : 0; }

const char *kvi_st_meta_key(const kvi_st_file *f, int i) {
  return (f && i >= 0 && i < f->nmeta) ? f->mkeys[i] : NULL;
}

kvi_status kvi_st_read_reals(kvi_real *dst, size_t n, const kvi_st_file *f, const char *name) {
  if (!f || !name || (n && !dst)) return kvi_fail(KVI_ERR_ARG, "kvi_st_read_reals: NULL argument");
  const kvi_st_tensor *t = kvi_st_get(f, name);
  if (!t) {
    char list[300] = "";
    size_t k = 0;
    for (int i = 0; i < f->n && i < 6 && k < sizeof list; i++)
      k += (size_t)snprintf(list + k, sizeof list - k, "%s\"%.40s\"", i ? ", " : "",
                            i < 5 ? f->t[i].name : "...");
    return kvi_fail(KVI_ERR_ARG, "%s: no tensor named \"%s\" (the file has %d: %s)", f->path, name,
                    f->n, f->n ? list : "none");
  }
  char shp[200];
  format_shape(shp, sizeof shp, t->ndim, t->shape);
  int64_t numel = kvi_st_numel(t);
  if ((uint64_t)numel != (uint64_t)n)
    return kvi_fail(KVI_ERR_SHAPE,
                    "%s: tensor \"%s\" has shape %s (%lld elements), but %zu were expected\n"
                    "HINT: the checkpoint was written for a different architecture",
                    f->path, name, shp, (long long)numel, n);
  if (strcmp(t->dtype, "F64") == 0) {
    const double *src = t->data;
    for (size_t i = 0; i < n; i++) {
#ifndef KVI_DOUBLE
      if (isfinite(src[i]) && fabs(src[i]) > (double)FLT_MAX)
        return kvi_fail(KVI_ERR_NONFINITE,
                        "%s: tensor \"%s\" element %zu = %g is outside the range of float", f->path,
                        name, i, src[i]);
#endif
      dst[i] = (kvi_real)src[i];
    }
  } else if (strcmp(t->dtype, "F32") == 0) {
    const float *src = t->data;
    for (size_t i = 0; i < n; i++) dst[i] = (kvi_real)src[i];
  } else {
    return kvi_fail(KVI_ERR_UNSUPPORTED,
                    "%s: tensor \"%s\" has dtype %s; only F32 and F64 convert to reals", f->path,
                    name, t->dtype);
  }
  return KVI_OK;
}
