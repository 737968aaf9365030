/* Private helpers of the io module, shared by its sources (not installed, not part of the API).
 *
 * JSON (json_write.c, json_parse.c): UTF-8 validation, the C locale's decimal point, and the
 * layout of a parsed value (built by the parser, read back by kvi_jb_value in the writer).
 * Files (file.c, safetensors.c): string duplication and opening a regular file for reading. */
#ifndef KRONVI_IO_INTERNAL_H
#define KRONVI_IO_INTERNAL_H

#include <locale.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/io.h"

/* ---- JSON ------------------------------------------------------------------------------- */

static inline char kvi__locale_point(void) {
  const struct lconv *lc = localeconv();
  return (lc && lc->decimal_point && lc->decimal_point[0]) ? lc->decimal_point[0] : '.';
}

/* Length of the valid UTF-8 sequence starting at s[0] (s[0] >= 0x80), 0 if invalid: rejects
 * overlong forms, surrogates (U+D800..DFFF) and code points above U+10FFFF. */
static inline size_t kvi__utf8_seq(const unsigned char *s, size_t avail) {
  unsigned c = s[0];
  size_t n;
  unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (avail < n) return 0;
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < n; i++)
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  return n;
}

/* A parsed value. Children of an array or object are stored contiguously (items[0..n)), keys
 * of an object in a parallel array; everything lives in the memory of its document. */
typedef struct {
  char *s;
  size_t len;
} kvi__jstr;

struct kvi_json {
  kvi_json_type type;
  bool is_int;  /* number literal without fraction/exponent that fits int64 */
  bool is_root; /* the node embedded in a doc (what kvi_json_free accepts) */
  bool b;
  double num;
  int64_t ival;
  size_t n;        /* string bytes, array elements or object members */
  char *str;       /* STRING: NUL-terminated */
  kvi_json *items; /* ARRAY/OBJECT: n values */
  kvi__jstr *keys; /* OBJECT: n keys */
};

/* ---- files ------------------------------------------------------------------------------ */

static inline char *kvi__dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* Opens a regular file for reading and returns its size (defined in file.c). */
kvi_status kvi__open_regular(FILE **fp, long long *size, const char *path);

#endif
