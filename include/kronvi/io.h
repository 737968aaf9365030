/* kronvi io: JSON (writer + DOM parser), safetensors checkpoints, atomic file writes.
 *
 * Everything here returns a kvi_status and, on failure, leaves a detail message for the calling
 * thread (kvi_last_error) that names the file, what was expected and what was found. Nothing
 * here exits. The module knows no models: callers pass names, shapes and raw arrays.
 *
 * Memory: strings handed to the caller (kvi_jb_take, kvi_read_file) are malloc'd; release them
 * with free(). Parsed documents and opened files are released with their own *_free/_close. */
#ifndef KRONVI_IO_H
#define KRONVI_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kronvi/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- files -------------------------------------------------------------------------------- */
/* Atomic replacement of a file: the data go to "<path>.tmp.<pid>" in the same directory (a
 * ".<k>" suffix is added if that name is taken), which is written with checked writes, flushed,
 * fsync'ed and closed, then renamed over `path`, and the directory is fsync'ed. On any failure
 * the temporary file is removed and an existing file at `path` is left untouched. A reader sees
 * either the whole old file or the whole new one, also after a crash. If `path` exists, its
 * permission bits are kept. If `path` is a symbolic link, the link itself is replaced. */
typedef struct kvi_atomic_file kvi_atomic_file;
KVI_API kvi_status kvi_atomic_open(kvi_atomic_file **out, const char *path);
KVI_API kvi_status kvi_atomic_write(kvi_atomic_file *f, const void *data, size_t len);
/* Makes the new file visible. Always releases f (on failure the temporary file is removed). A
 * failed kvi_atomic_write is remembered: commit then fails too and replaces nothing. */
KVI_API kvi_status kvi_atomic_commit(kvi_atomic_file *f);
/* Discards the temporary file and releases f (NULL is fine). */
KVI_API void kvi_atomic_abort(kvi_atomic_file *f);
/* One call: open, write len bytes, commit. */
KVI_API kvi_status kvi_write_file_atomic(const char *path, const void *data, size_t len);

/* Reads a whole regular file into a malloc'd buffer with a terminating NUL (not counted in
 * *len). max_len (0: no limit) refuses larger files with KVI_ERR_FORMAT. */
KVI_API kvi_status kvi_read_file(char **data, size_t *len, const char *path, size_t max_len);

/* ---- JSON writer ------------------------------------------------------------------------ */
/* A growable string builder that emits RFC 8259 JSON. Calls return nothing: the first error
 * (out of memory, a value where a key is due, unbalanced end_*, invalid UTF-8 in a string,
 * nesting deeper than KVI_JSON_MAX_DEPTH) is remembered and reported by kvi_jb_take /
 * kvi_jb_status; later calls do nothing. Numbers are written with the fewest of 15, 16 or 17
 * significant digits that read back to the same double (bit-exact round trip); NaN and
 * infinities, which JSON cannot express, are written as null. Strings must be UTF-8; '"', '\\'
 * and control characters are escaped, other characters are written as they are.
 *
 *   kvi_json_buf jb;
 *   kvi_jb_init(&jb, true);
 *   kvi_jb_begin_object(&jb);
 *   kvi_jb_kv_str(&jb, "arch", "mlp");
 *   kvi_jb_key(&jb, "sizes");
 *   kvi_jb_begin_array(&jb); kvi_jb_int(&jb, 784); kvi_jb_int(&jb, 10); kvi_jb_end_array(&jb);
 *   kvi_jb_end_object(&jb);
 *   char *s; size_t n;
 *   if (kvi_jb_take(&jb, &s, &n) == KVI_OK) { ...; free(s); }   // take also frees on failure
 */
#define KVI_JSON_MAX_DEPTH 128

typedef struct {
  char *buf;        /* NUL-terminated text so far (NULL until the first write) */
  size_t len;       /* bytes in buf, NUL excluded */
  size_t cap;       /* bytes allocated */
  bool pretty;      /* newlines and two-space indentation */
  int depth;        /* open containers */
  bool done;        /* a complete top-level value has been written */
  bool want_val;    /* inside an object, a key has been written and its value is due */
  kvi_status err;   /* first error */
  char errmsg[160]; /* its message, repeated by kvi_jb_take */
  /* per open container: 'o' object or 'a' array; and whether it has members yet */
  char kind[KVI_JSON_MAX_DEPTH];
  bool nonempty[KVI_JSON_MAX_DEPTH];
} kvi_json_buf;

KVI_API void kvi_jb_init(kvi_json_buf *jb, bool pretty);
KVI_API void kvi_jb_begin_object(kvi_json_buf *jb);
KVI_API void kvi_jb_end_object(kvi_json_buf *jb);
KVI_API void kvi_jb_begin_array(kvi_json_buf *jb);
KVI_API void kvi_jb_end_array(kvi_json_buf *jb);
KVI_API void kvi_jb_key(kvi_json_buf *jb, const char *key);
KVI_API void kvi_jb_str(kvi_json_buf *jb, const char *s);            /* NULL writes null */
KVI_API void kvi_jb_strn(kvi_json_buf *jb, const char *s, size_t n); /* may contain NULs */
KVI_API void kvi_jb_num(kvi_json_buf *jb, double x);
KVI_API void kvi_jb_int(kvi_json_buf *jb, int64_t x);
KVI_API void kvi_jb_bool(kvi_json_buf *jb, bool b);
KVI_API void kvi_jb_null(kvi_json_buf *jb);
/* key + value in one call, for objects. */
KVI_API void kvi_jb_kv_str(kvi_json_buf *jb, const char *key, const char *s);
KVI_API void kvi_jb_kv_num(kvi_json_buf *jb, const char *key, double x);
KVI_API void kvi_jb_kv_int(kvi_json_buf *jb, const char *key, int64_t x);
KVI_API void kvi_jb_kv_bool(kvi_json_buf *jb, const char *key, bool b);
/* The first error so far (KVI_OK if none), with its message set when it happened. */
KVI_API kvi_status kvi_jb_status(const kvi_json_buf *jb);
/* Finishes: checks that exactly one complete value was written, hands the NUL-terminated text
 * to the caller (*out, free() it; *len may be NULL) and resets jb. On failure *out = NULL and
 * jb's memory is released. */
KVI_API kvi_status kvi_jb_take(kvi_json_buf *jb, char **out, size_t *len);
KVI_API void kvi_jb_free(kvi_json_buf *jb); /* releases jb's buffer (after an early exit) */

/* ---- JSON parser ------------------------------------------------------------------------ */
/* A DOM parser for RFC 8259 JSON: objects, arrays, strings (all escapes, \uXXXX with surrogate
 * pairs to UTF-8), numbers, true/false/null. Strict: no comments, no trailing commas, no NaN,
 * no leading zeros, no lone surrogates, valid UTF-8 only, no duplicate keys in an object, one
 * value per document (whitespace around it is fine). Errors name the byte offset, line and
 * column: "JSON: expected ':' after object key at byte 12 (line 1, column 13), found '}'". */
typedef struct kvi_json kvi_json;

typedef enum {
  KVI_JSON_NULL = 0,
  KVI_JSON_BOOL,
  KVI_JSON_NUMBER,
  KVI_JSON_STRING,
  KVI_JSON_ARRAY,
  KVI_JSON_OBJECT
} kvi_json_type;

/* Parses s[0..len) (need not be NUL-terminated). *out = NULL on failure. */
KVI_API kvi_status kvi_json_parse(kvi_json **out, const char *s, size_t len);
/* Same, with a nesting limit (<= 0: KVI_JSON_MAX_DEPTH; at most 4096; arrays and objects
 * count one level each) and, on failure, the byte offset of the error in *err_offset (may be NULL).
 */
KVI_API kvi_status kvi_json_parse_ex(kvi_json **out, const char *s, size_t len, int max_depth,
                                     size_t *err_offset);
/* Reads and parses a file; messages start with the file name. */
KVI_API kvi_status kvi_json_parse_file(kvi_json **out, const char *path);
/* Frees a document. Only the root returned by a parse may be passed (NULL is fine); values
 * reached through accessors belong to their document. */
KVI_API void kvi_json_free(kvi_json *root);

/* Accessors: all accept NULL and return a neutral value (NULL, 0, NaN, false) for a NULL or
 * wrongly typed argument, so chains like kvi_json_num(kvi_json_get(o, "lr")) are safe. */
KVI_API kvi_json_type kvi_json_kind(const kvi_json *v);  /* KVI_JSON_NULL for NULL */
KVI_API const char *kvi_json_type_name(kvi_json_type t); /* "object", "number", ... */
/* Elements of an array or members of an object; 0 otherwise. */
KVI_API size_t kvi_json_len(const kvi_json *v);
/* i-th element of an array, or value of the i-th member of an object (document order). */
KVI_API const kvi_json *kvi_json_at(const kvi_json *v, size_t i);
/* Key of the i-th member of an object, and its length in bytes (a key may contain \u0000). */
KVI_API const char *kvi_json_key_at(const kvi_json *v, size_t i);
KVI_API size_t kvi_json_key_len(const kvi_json *v, size_t i);
/* Value of the member named key of an object (NULL if absent). */
KVI_API const kvi_json *kvi_json_get(const kvi_json *obj, const char *key);
KVI_API double kvi_json_num(const kvi_json *v); /* NaN unless a number */
/* True (and *out set) iff v is a number written as an integer literal (no fraction, no
 * exponent) that fits in int64_t: exact even beyond 2^53. */
KVI_API bool kvi_json_int(const kvi_json *v, int64_t *out);
KVI_API const char *kvi_json_str(const kvi_json *v); /* NUL-terminated UTF-8; NULL if no string */
KVI_API size_t kvi_json_str_len(const kvi_json *v);  /* bytes (a string may contain \u0000) */
KVI_API bool kvi_json_bool(const kvi_json *v);       /* false unless true */
KVI_API bool kvi_json_is_null(const kvi_json *v);    /* true for a JSON null (not for NULL) */
/* Writes a parsed value into a builder (deep copy; numbers keep their bits). */
KVI_API void kvi_jb_value(kvi_json_buf *jb, const kvi_json *v);

/* ---- safetensors ------------------------------------------------------------------------ */
/* The Hugging Face safetensors format: an 8-byte little-endian u64 N, then N bytes of a JSON
 * object mapping each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the first byte after the header) plus an optional "__metadata__" object of string
 * values; the header is padded with spaces to a multiple of 8; then the data region, each tensor
 * little-endian, contiguous, row-major, the tensors tiling the region without gaps or overlaps.
 *
 * dtypes: "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8",
 * "BOOL", "F8_E4M3", "F8_E5M2" (the writer copies bytes; kvi_st_read_reals converts F32/F64).
 * See docs/io.md for how kronvi checkpoints use the format. */
#define KVI_ST_MAX_DIMS 8
#define KVI_ST_MAX_HEADER (100u * 1000u * 1000u) /* bytes, as in the reference implementation */

typedef struct {
  const char *name;  /* UTF-8, unique, not "__metadata__" */
  const char *dtype; /* one of the names above */
  int ndim;          /* 0 (a scalar) .. KVI_ST_MAX_DIMS */
  int64_t shape[KVI_ST_MAX_DIMS];
  const void *data; /* prod(shape) elements, host byte order; may be NULL when empty */
} kvi_st_tensor;

/* Bytes per element of a dtype name, 0 if unknown. */
KVI_API size_t kvi_st_dtype_size(const char *dtype);
/* prod(shape), and prod(shape) * dtype size (0 for an invalid tensor). */
KVI_API int64_t kvi_st_numel(const kvi_st_tensor *t);
KVI_API size_t kvi_st_nbytes(const kvi_st_tensor *t);

/* Writes tensors[0..n) in the given order (header order = data order) and the metadata pairs
 * (meta_keys[i], meta_values[i]), i < nmeta (both may be NULL when nmeta == 0), atomically (see
 * kvi_atomic_open). Everything is validated before the file is created: names unique and
 * non-empty, dtypes known, 0 <= ndim <= 8, shapes >= 0, data non-NULL unless empty, metadata
 * keys unique. Data are converted to little-endian on big-endian hosts. */
KVI_API kvi_status kvi_safetensors_write(const char *path, const kvi_st_tensor *tensors, int n,
                                         const char *const *meta_keys,
                                         const char *const *meta_values, int nmeta);

typedef struct kvi_st_file kvi_st_file;
/* Reads and validates a whole file: size >= 8, header length <= KVI_ST_MAX_HEADER and <= size -
 * 8, header valid JSON object, each entry a known dtype with a non-negative shape whose byte
 * size equals end - begin, offsets inside the data region, tiling it without gaps or overlaps,
 * names unique, metadata values strings. Each tensor's data is 64-byte aligned in memory, in
 * host byte order. */
KVI_API kvi_status kvi_safetensors_open(kvi_st_file **out, const char *path);
KVI_API void kvi_safetensors_close(kvi_st_file *f); /* NULL is fine */
KVI_API int kvi_st_count(const kvi_st_file *f);
KVI_API const kvi_st_tensor *kvi_st_at(const kvi_st_file *f, int i);             /* header order */
KVI_API const kvi_st_tensor *kvi_st_get(const kvi_st_file *f, const char *name); /* NULL: absent */
KVI_API const char *kvi_st_meta(const kvi_st_file *f, const char *key);          /* NULL: absent */
KVI_API int kvi_st_meta_count(const kvi_st_file *f);
KVI_API const char *kvi_st_meta_key(const kvi_st_file *f, int i);
/* Copies tensor `name` (F32 or F64) into dst[0..n) as kvi_real. Fails with KVI_ERR_ARG if the
 * tensor is absent, KVI_ERR_SHAPE if it does not have exactly n elements, KVI_ERR_UNSUPPORTED
 * for other dtypes, KVI_ERR_NONFINITE if an F64 value is finite but outside float range in a
 * single-precision build. */
KVI_API kvi_status kvi_st_read_reals(kvi_real *dst, size_t n, const kvi_st_file *f,
                                     const char *name);

#ifdef __cplusplus
}
#endif
#endif
