/* JSON writer and parser: round trips (nested values, escapes, unicode, doubles bit-exact),
 * strict rejection of malformed input with the right byte offset, no crash on truncated or
 * mutated input, builder misuse reported as errors. */
#include <float.h>
#include <locale.h>
#include <stdint.h>

#include "kronvi/io.h"
#include "kvi_test.h"

static bool streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* Parses and expects failure at byte `off` with a message naming that offset. */
static void expect_error_at(const char *text, size_t len, size_t off, const char *needle) {
  kvi_json *v = (kvi_json *)1;
  size_t got = (size_t)-1;
  kvi_clear_error();
  kvi_status st = kvi_json_parse_ex(&v, text, len, 0, &got);
  kvi_test_checks++;
  char want[64];
  snprintf(want, sizeof want, "at byte %zu ", off);
  const char *msg = kvi_last_error();
  if (st == KVI_OK || v != NULL || got != off || !strstr(msg, want) ||
      (needle && !strstr(msg, needle))) {
    kvi_test_failures++;
    fprintf(stderr,
            "%s:%d: parse of <%.*s>: status %s, offset %zu (want %zu), message \"%s\"%s%s\n",
            __FILE__, __LINE__, (int)(len < 60 ? len : 60), text, kvi_status_name(st), got, off,
            msg, needle ? " should contain " : "", needle ? needle : "");
  }
  if (st == KVI_OK) kvi_json_free(v);
}
#define BAD(text, off, needle) expect_error_at(text, sizeof(text) - 1, off, needle)

static char *build_sample(bool pretty, size_t *len) {
  kvi_json_buf jb;
  kvi_jb_init(&jb, pretty);
  kvi_jb_begin_object(&jb);
  kvi_jb_kv_str(&jb, "name", "mn-mlp");
  kvi_jb_kv_int(&jb, "layers", 3);
  kvi_jb_kv_num(&jb, "lr", 1e-3);
  kvi_jb_kv_bool(&jb, "ard", true);
  kvi_jb_key(&jb, "none");
  kvi_jb_null(&jb);
  kvi_jb_key(&jb, "sizes");
  kvi_jb_begin_array(&jb);
  kvi_jb_int(&jb, 784);
  kvi_jb_int(&jb, -10);
  kvi_jb_begin_object(&jb);
  kvi_jb_kv_str(&jb, "esc", "q\" b\\ s/ \b\f\n\r\t \x01\x1f end");
  kvi_jb_kv_str(&jb, "uni", "\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80");
  kvi_jb_end_object(&jb);
  kvi_jb_begin_array(&jb);
  kvi_jb_end_array(&jb);
  kvi_jb_begin_object(&jb);
  kvi_jb_end_object(&jb);
  kvi_jb_end_array(&jb);
  kvi_jb_key(&jb, "nul");
  kvi_jb_strn(&jb, "a\0b", 3);
  kvi_jb_end_object(&jb);
  char *s = NULL;
  CHECK_OK(kvi_jb_take(&jb, &s, len));
  return s;
}

static void test_roundtrip(void) {
  size_t len;
  char *s = build_sample(false, &len);
  if (!s) return;
  CHECK(strlen(s) == len);
  const char *want =
      "{\"name\":\"mn-mlp\",\"layers\":3,\"lr\":0.001,\"ard\":true,\"none\":null,\"sizes\":[784,-"
      "10,"
      "{\"esc\":\"q\\\" b\\\\ s/ \\b\\f\\n\\r\\t \\u0001\\u001f end\",\"uni\":\"\xc3\xa9 "
      "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\"},[],{}],\"nul\":\"a\\u0000b\"}";
  CHECK(streq(s, want));
  if (strcmp(s, want) != 0) fprintf(stderr, "got  %s\nwant %s\n", s, want);

  kvi_json *doc = NULL;
  CHECK_OK(kvi_json_parse(&doc, s, len));
  CHECK(kvi_json_kind(doc) == KVI_JSON_OBJECT);
  CHECK(kvi_json_len(doc) == 7);
  CHECK(streq(kvi_json_str(kvi_json_get(doc, "name")), "mn-mlp"));
  int64_t iv = 0;
  CHECK(kvi_json_int(kvi_json_get(doc, "layers"), &iv) && iv == 3);
  CHECK(kvi_json_num(kvi_json_get(doc, "lr")) == 1e-3);
  CHECK(!kvi_json_int(kvi_json_get(doc, "lr"), &iv));
  CHECK(kvi_json_bool(kvi_json_get(doc, "ard")));
  CHECK(kvi_json_is_null(kvi_json_get(doc, "none")));
  const kvi_json *sizes = kvi_json_get(doc, "sizes");
  CHECK(kvi_json_kind(sizes) == KVI_JSON_ARRAY && kvi_json_len(sizes) == 5);
  CHECK(kvi_json_num(kvi_json_at(sizes, 1)) == -10.0);
  const kvi_json *inner = kvi_json_at(sizes, 2);
  CHECK(streq(kvi_json_str(kvi_json_get(inner, "esc")), "q\" b\\ s/ \b\f\n\r\t \x01\x1f end"));
  CHECK(streq(kvi_json_str(kvi_json_get(inner, "uni")),
              "\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80"));
  CHECK(kvi_json_kind(kvi_json_at(sizes, 3)) == KVI_JSON_ARRAY &&
        kvi_json_len(kvi_json_at(sizes, 3)) == 0);
  CHECK(kvi_json_kind(kvi_json_at(sizes, 4)) == KVI_JSON_OBJECT);
  const kvi_json *nul = kvi_json_get(doc, "nul");
  CHECK(kvi_json_str_len(nul) == 3 && memcmp(kvi_json_str(nul), "a\0b", 4) == 0);
  CHECK(streq(kvi_json_key_at(doc, 5), "sizes") && kvi_json_key_len(doc, 5) == 5);
  CHECK(kvi_json_get(doc, "missing") == NULL);

  /* re-serializing the DOM gives the same text */
  kvi_json_buf jb;
  kvi_jb_init(&jb, false);
  kvi_jb_value(&jb, doc);
  char *again = NULL;
  CHECK_OK(kvi_jb_take(&jb, &again, NULL));
  CHECK(again && streq(again, s));
  free(again);

  /* pretty output parses to an equal document */
  size_t plen;
  char *pretty = build_sample(true, &plen);
  kvi_json *pdoc = NULL;
  CHECK_OK(kvi_json_parse(&pdoc, pretty, plen));
  kvi_jb_init(&jb, false);
  kvi_jb_value(&jb, pdoc);
  CHECK_OK(kvi_jb_take(&jb, &again, NULL));
  CHECK(again && streq(again, s));
  free(again);
  free(pretty);
  kvi_json_free(pdoc);
  kvi_json_free(doc);
  free(s);

  /* exact pretty layout */
  kvi_jb_init(&jb, true);
  kvi_jb_begin_object(&jb);
  kvi_jb_kv_int(&jb, "a", 1);
  kvi_jb_key(&jb, "b");
  kvi_jb_begin_array(&jb);
  kvi_jb_num(&jb, 2.5);
  kvi_jb_str(&jb, "x");
  kvi_jb_end_array(&jb);
  kvi_jb_key(&jb, "c");
  kvi_jb_begin_array(&jb);
  kvi_jb_end_array(&jb);
  kvi_jb_end_object(&jb);
  CHECK_OK(kvi_jb_take(&jb, &again, NULL));
  CHECK(again &&
        streq(again, "{\n  \"a\": 1,\n  \"b\": [\n    2.5,\n    \"x\"\n  ],\n  \"c\": []\n}"));
  free(again);
}

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void test_doubles(void) {
  enum { NFIX = 14, NRAND = 20000 };
  double fixed[NFIX] = {0.1,
                        1.0 / 3.0,
                        DBL_MAX,
                        DBL_MIN,
                        4.9406564584124654e-324,
                        -0.0,
                        1e-300,
                        1e300,
                        123456789012345678.0,
                        9007199254740993.0,
                        2.2250738585072009e-308,
                        -1.5,
                        1e21,
                        5e-324};
  double *xs = malloc((NFIX + NRAND) * sizeof *xs);
  uint64_t seed = 42;
  int n = 0;
  for (int i = 0; i < NFIX; i++) xs[n++] = fixed[i];
  while (n < NFIX + NRAND) {
    uint64_t bits = splitmix(&seed);
    double x;
    memcpy(&x, &bits, sizeof x);
    if (isfinite(x)) xs[n++] = x;
  }
  kvi_json_buf jb;
  kvi_jb_init(&jb, false);
  kvi_jb_begin_array(&jb);
  for (int i = 0; i < n; i++) kvi_jb_num(&jb, xs[i]);
  kvi_jb_num(&jb, (double)NAN);
  kvi_jb_num(&jb, -(double)INFINITY);
  kvi_jb_end_array(&jb);
  char *s = NULL;
  size_t len;
  CHECK_OK(kvi_jb_take(&jb, &s, &len));
  if (!s) {
    free(xs);
    return;
  }
  CHECK(strncmp(s, "[0.1,0.3333333333333333,", 24) == 0); /* shortest round-trip form */
  kvi_json *doc = NULL;
  CHECK_OK(kvi_json_parse(&doc, s, len));
  CHECK(kvi_json_len(doc) == (size_t)n + 2);
  int bad = 0;
  for (int i = 0; i < n; i++) {
    double y = kvi_json_num(kvi_json_at(doc, (size_t)i));
    if (memcmp(&y, &xs[i], sizeof y) != 0) {
      if (bad++ < 5) fprintf(stderr, "double %d: wrote %.17g read %.17g\n", i, xs[i], y);
    }
  }
  CHECK(bad == 0);
  CHECK(kvi_json_is_null(kvi_json_at(doc, (size_t)n)));     /* NaN -> null */
  CHECK(kvi_json_is_null(kvi_json_at(doc, (size_t)n + 1))); /* -inf -> null */
  kvi_json_free(doc);
  free(s);
  free(xs);

  /* int64 exact at the extremes and beyond 2^53 */
  kvi_jb_init(&jb, false);
  kvi_jb_begin_array(&jb);
  kvi_jb_int(&jb, INT64_MIN);
  kvi_jb_int(&jb, INT64_MAX);
  kvi_jb_int(&jb, 9007199254740993ll);
  kvi_jb_end_array(&jb);
  CHECK_OK(kvi_jb_take(&jb, &s, &len));
  CHECK_OK(kvi_json_parse(&doc, s, len));
  int64_t a = 0, b = 0, c = 0;
  CHECK(kvi_json_int(kvi_json_at(doc, 0), &a) && a == INT64_MIN);
  CHECK(kvi_json_int(kvi_json_at(doc, 1), &b) && b == INT64_MAX);
  CHECK(kvi_json_int(kvi_json_at(doc, 2), &c) && c == 9007199254740993ll);
  kvi_json_free(doc);
  free(s);
  /* beyond int64: a number, but not an exact integer */
  const char *nums = "[9223372036854775808, -0, 1e2, 1E-2]";
  CHECK_OK(kvi_json_parse(&doc, nums, strlen(nums)));
  CHECK(!kvi_json_int(kvi_json_at(doc, 0), &a));
  CHECK(kvi_json_num(kvi_json_at(doc, 0)) == 9223372036854775808.0);
  CHECK(kvi_json_int(kvi_json_at(doc, 1), &a) && a == 0 &&
        signbit(kvi_json_num(kvi_json_at(doc, 1))));
  CHECK(!kvi_json_int(kvi_json_at(doc, 2), &a) && kvi_json_num(kvi_json_at(doc, 2)) == 100.0);
  CHECK(kvi_json_num(kvi_json_at(doc, 3)) == 0.01);
  kvi_json_free(doc);
}

/* Parses text, copies the document with kvi_jb_value; returns the new text (free it). */
static char *copy_text(const char *text) {
  kvi_json *doc = NULL;
  char *out = NULL;
  CHECK_OK(kvi_json_parse(&doc, text, strlen(text)));
  if (!doc) return NULL;
  kvi_json_buf jb;
  kvi_jb_init(&jb, false);
  kvi_jb_value(&jb, doc);
  CHECK_OK(kvi_jb_take(&jb, &out, NULL));
  kvi_json_free(doc);
  return out;
}

/* -0.0 keeps its sign bit through the writer, the parser and kvi_jb_value; 0 and other
 * integers are written as before. */
static void test_negative_zero(void) {
  kvi_json_buf jb;
  kvi_jb_init(&jb, false);
  kvi_jb_begin_array(&jb);
  kvi_jb_num(&jb, -0.0);
  kvi_jb_num(&jb, 0.0);
  kvi_jb_int(&jb, 0);
  kvi_jb_end_array(&jb);
  char *s = NULL;
  CHECK_OK(kvi_jb_take(&jb, &s, NULL));
  CHECK(streq(s, "[-0,0,0]"));
  char *c = s ? copy_text(s) : NULL;
  CHECK(streq(c, "[-0,0,0]"));
  kvi_json *doc = NULL;
  CHECK_OK(kvi_json_parse(&doc, c ? c : "[]", c ? strlen(c) : 2));
  CHECK(kvi_json_len(doc) == 3);
  double z0 = kvi_json_num(kvi_json_at(doc, 0)), z1 = kvi_json_num(kvi_json_at(doc, 1));
  CHECK(z0 == 0.0 && signbit(z0));
  CHECK(z1 == 0.0 && !signbit(z1));
  int64_t iv = 1;
  CHECK(kvi_json_int(kvi_json_at(doc, 0), &iv) && iv == 0);
  kvi_json_free(doc);
  free(c);
  free(s);

  /* copies of other spellings; integers keep their exact text */
  c = copy_text("[-0, -0.0, -0e3, 0, 0.0, -5, 7, 1e2, -9223372036854775808, 9223372036854775807]");
  const char *want = "[-0,-0,-0,0,0,-5,7,100,-9223372036854775808,9223372036854775807]";
  CHECK(streq(c, want));
  if (c && strcmp(c, want) != 0) fprintf(stderr, "got  %s\nwant %s\n", c, want);
  free(c);
}

static void test_unicode(void) {
  const char *text = "[\"\\u00e9\\u65e5\\uD83D\\uDE00\\u0041\\/\", \"\xc3\xa9\"]";
  kvi_json *doc = NULL;
  CHECK_OK(kvi_json_parse(&doc, text, strlen(text)));
  CHECK(streq(kvi_json_str(kvi_json_at(doc, 0)),
              "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80"
              "A/"));
  CHECK(streq(kvi_json_str(kvi_json_at(doc, 1)), "\xc3\xa9"));
  kvi_json_free(doc);
  /* byte-order mark and surrounding whitespace are fine */
  const char *bom = "\xEF\xBB\xBF \t\r\n true \n";
  CHECK_OK(kvi_json_parse(&doc, bom, strlen(bom)));
  CHECK(kvi_json_bool(doc));
  kvi_json_free(doc);
  BAD("\"\\uD83D\"", 1, "lone high surrogate");
  BAD("\"\\uDE00x\"", 1, "lone low surrogate");
  BAD("\"\\uD83D\\u0041\"", 7, "not a low surrogate");
  BAD("\"\\u12G4\"", 5, "hex digit");
  BAD("\"\xff\"", 1, "UTF-8");
  BAD("\"\xc0\xaf\"", 1, "UTF-8");     /* overlong '/' */
  BAD("\"\xed\xa0\x80\"", 1, "UTF-8"); /* encoded surrogate */
  BAD("\"\xe6\x97\"", 1, "UTF-8");     /* truncated sequence */
}

static void test_malformed(void) {
  BAD("", 0, "expected a value");
  BAD("   ", 3, "end of input");
  BAD("{\"a\": \"abc", 6, "unterminated string");
  BAD("[1,2,]", 5, "trailing comma");
  BAD("{\"a\":1,}", 7, "trailing comma");
  BAD("{\"a\" 1}", 5, "expected ':'");
  BAD("{\"a\":1 \"b\":2}", 7, "expected ','");
  BAD("[1 2]", 3, "expected ','");
  BAD("{1:2}", 1, "string key");
  BAD("01", 0, "leading zero");
  BAD("-01", 1, "leading zero");
  BAD("1.", 2, "after '.'");
  BAD("1.e5", 2, "after '.'");
  BAD("-", 1, "digit");
  BAD("-a", 1, "digit");
  BAD("1e+", 3, "exponent");
  BAD(".5", 0, "expected a value");
  BAD("+1", 0, "expected a value");
  BAD("0x10", 1, "end of input");
  BAD("1e999", 0, "out of the range");
  BAD("NaN", 0, "expected a value");
  BAD("tru", 3, "'true'");
  BAD("nulL", 3, "'null'");
  BAD("[true false]", 6, "expected ','");
  BAD("{\"a\": [1, 2", 11, "end of input");
  BAD("{\"a\":1,\"b\":2,\"a\":3}", 13, "duplicate key \"a\"");
  BAD("\"a\\x\"", 2, "invalid escape");
  BAD("\"a\nb\"", 2, "control character");
  BAD("{} x", 3, "end of input after");
  BAD("[] []", 3, "end of input after");
  BAD("/* c */ 1", 0, "expected a value");
  BAD("'a'", 0, "expected a value");

  /* depth: 1000 nested arrays fail at the 129th '[' (default limit 128) */
  char *deep = malloc(2001);
  for (int i = 0; i < 1000; i++) deep[i] = '[', deep[1000 + i] = ']';
  expect_error_at(deep, 2000, KVI_JSON_MAX_DEPTH, "nesting deeper");
  kvi_json *doc = NULL;
  CHECK_OK(kvi_json_parse_ex(&doc, deep + 1000 - 128, 256, 0, NULL)); /* exactly 128: fine */
  kvi_json_free(doc);
  CHECK_OK(kvi_json_parse_ex(&doc, deep, 2000, 1000, NULL)); /* a caller may raise the limit */
  kvi_json_free(doc);
  for (int i = 0; i < 1000; i++) deep[2 * i] = '{', deep[2 * i + 1] = '"';
  expect_error_at(deep, 2000, 4, "expected ':'"); /* {"{"{"... : a key, then no ':' */
  free(deep);

  /* message format: line and column */
  kvi_clear_error();
  CHECK(kvi_json_parse(&doc, "{\n  \"a\": tru\n}", 14) == KVI_ERR_FORMAT);
  CHECK(strstr(kvi_last_error(), "(line 2, column 11)") != NULL);

  /* every proper prefix of a document is an error (not a crash), reported at or before its end */
  const char *full =
      "{\"k\": [1, -2.5e-3, true, false, null, \"s\\u00e9\\n\", {\"x\": []}], \"z\": \"\xc3\xa9\"}";
  size_t flen = strlen(full);
  int prefix_bad = 0;
  for (size_t n = 0; n < flen; n++) {
    char *cut = malloc(n + 1); /* exact size so ASan sees any over-read */
    memcpy(cut, full, n);
    size_t off = (size_t)-1;
    kvi_status st = kvi_json_parse_ex(&doc, cut, n, 0, &off);
    if (st == KVI_OK || off > n) prefix_bad++;
    if (st == KVI_OK) kvi_json_free(doc);
    free(cut);
  }
  CHECK(prefix_bad == 0);
  CHECK_OK(kvi_json_parse(&doc, full, flen));
  kvi_json_free(doc);

  /* random mutations: either parse or fail with a message, never crash or over-read */
  static const char alphabet[] = "{}[]\",:\\u0e-+. \x01\xff\xc3tfn";
  uint64_t seed = 7;
  int silent = 0;
  for (int it = 0; it < 5000; it++) {
    char *m = malloc(flen);
    memcpy(m, full, flen);
    int edits = 1 + (int)(splitmix(&seed) % 3);
    for (int e = 0; e < edits; e++) {
      uint64_t r = splitmix(&seed);
      m[r % flen] = alphabet[(r >> 32) % (sizeof alphabet - 1)];
    }
    size_t mlen = (size_t)(splitmix(&seed) % (flen + 1));
    kvi_clear_error();
    kvi_status st = kvi_json_parse(&doc, m, mlen);
    if (st != KVI_OK && kvi_last_error()[0] == 0) silent++;
    if (st == KVI_OK) kvi_json_free(doc);
    free(m);
  }
  CHECK(silent == 0);
}

static void test_builder_misuse(void) {
  kvi_json_buf jb;
  char *s = (char *)1;
  kvi_jb_init(&jb, false);
  kvi_jb_key(&jb, "a"); /* key outside an object */
  CHECK(kvi_jb_status(&jb) == KVI_ERR_STATE);
  CHECK_FAILS(kvi_jb_take(&jb, &s, NULL));
  CHECK(s == NULL);

  kvi_jb_init(&jb, false);
  kvi_jb_begin_object(&jb);
  kvi_jb_int(&jb, 1); /* value without a key */
  kvi_jb_end_object(&jb);
  CHECK_FAILS(kvi_jb_take(&jb, &s, NULL));

  kvi_jb_init(&jb, false);
  kvi_jb_begin_array(&jb);
  kvi_jb_end_object(&jb); /* mismatched end */
  CHECK_FAILS(kvi_jb_take(&jb, &s, NULL));

  kvi_jb_init(&jb, false);
  kvi_jb_begin_object(&jb);
  kvi_jb_key(&jb, "a");
  kvi_jb_end_object(&jb); /* key without value */
  CHECK_FAILS(kvi_jb_take(&jb, &s, NULL));

  kvi_jb_init(&jb, false);
  kvi_jb_begin_array(&jb); /* left open */
  CHECK_FAILS(kvi_jb_take(&jb, &s, NULL));

  kvi_jb_init(&jb, false);
  CHECK_FAILS(kvi_jb_take(&jb, &s, NULL)); /* nothing written */

  kvi_jb_init(&jb, false);
  kvi_jb_int(&jb, 1);
  kvi_jb_int(&jb, 2); /* two top-level values */
  CHECK_FAILS(kvi_jb_take(&jb, &s, NULL));

  kvi_jb_init(&jb, false);
  kvi_jb_begin_array(&jb);
  kvi_jb_str(&jb, "bad \xff utf8");
  kvi_jb_end_array(&jb);
  CHECK(kvi_jb_status(&jb) == KVI_ERR_ARG);
  CHECK_FAILS(kvi_jb_take(&jb, &s, NULL));

  kvi_jb_init(&jb, false);
  for (int i = 0; i < KVI_JSON_MAX_DEPTH + 1; i++) kvi_jb_begin_array(&jb);
  CHECK_FAILS(kvi_jb_take(&jb, &s, NULL));

  kvi_jb_init(&jb, false); /* kvi_jb_free after an early exit */
  kvi_jb_begin_object(&jb);
  kvi_jb_kv_str(&jb, "a", "b");
  kvi_jb_free(&jb);
  CHECK(jb.buf == NULL && jb.len == 0);

  kvi_jb_init(&jb, false); /* NULL string writes null */
  kvi_jb_str(&jb, NULL);
  CHECK_OK(kvi_jb_take(&jb, &s, NULL));
  CHECK(s && streq(s, "null"));
  free(s);

  /* neutral accessors */
  CHECK(kvi_json_kind(NULL) == KVI_JSON_NULL);
  CHECK(!kvi_json_is_null(NULL));
  CHECK(kvi_json_len(NULL) == 0 && kvi_json_at(NULL, 0) == NULL && kvi_json_get(NULL, "a") == NULL);
  CHECK(isnan(kvi_json_num(NULL)) && kvi_json_str(NULL) == NULL && !kvi_json_bool(NULL));
  kvi_json *doc = NULL;
  CHECK_OK(kvi_json_parse(&doc, "{\"a\": \"x\"}", 10));
  CHECK(isnan(kvi_json_num(kvi_json_get(doc, "a"))));
  CHECK(kvi_json_at(kvi_json_get(doc, "a"), 0) == NULL);
  CHECK(kvi_json_str(kvi_json_at(doc, 0)) != NULL && kvi_json_at(doc, 1) == NULL);
  kvi_json_free((kvi_json *)kvi_json_get(doc, "a")); /* not a root: ignored, no double free */
  kvi_json_free(doc);
  kvi_json_free(NULL);
  CHECK_FAILS(kvi_json_parse(NULL, "1", 1));
}

static void test_file(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/test_json_cfg.json", kvi_test_dir());
  const char *cfg = "{\"lr\": 0.01, \"arch\": \"784-100-10\"}\n";
  CHECK_OK(kvi_write_file_atomic(path, cfg, strlen(cfg)));
  kvi_json *doc = NULL;
  CHECK_OK(kvi_json_parse_file(&doc, path));
  CHECK(kvi_json_num(kvi_json_get(doc, "lr")) == 0.01);
  kvi_json_free(doc);
  const char *broken = "{\"lr\": 0.01,\n \"arch\": }";
  CHECK_OK(kvi_write_file_atomic(path, broken, strlen(broken)));
  CHECK_FAILS(kvi_json_parse_file(&doc, path));
  CHECK(strstr(kvi_last_error(), "test_json_cfg.json: JSON: expected a value") != NULL);
  CHECK(strstr(kvi_last_error(), "line 2") != NULL);
  remove(path);
  CHECK_FAILS(kvi_json_parse_file(&doc, path));
  CHECK(strstr(kvi_last_error(), "test_json_cfg.json") != NULL);
}

/* A program may switch LC_NUMERIC to a locale with a decimal comma; JSON must not follow. */
static void test_locale(void) {
  const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8"};
  const char *got = NULL;
  for (int i = 0; i < 4 && !got; i++) got = setlocale(LC_NUMERIC, names[i]);
  if (!got) {
    printf("test_json: no decimal-comma locale installed, locale check skipped\n");
    return;
  }
  kvi_json_buf jb;
  kvi_jb_init(&jb, false);
  kvi_jb_num(&jb, 2.5);
  char *s = NULL;
  CHECK_OK(kvi_jb_take(&jb, &s, NULL));
  CHECK(s && streq(s, "2.5"));
  free(s);
  kvi_json *doc = NULL;
  CHECK_OK(kvi_json_parse(&doc, "0.125", 5));
  CHECK(kvi_json_num(doc) == 0.125);
  kvi_json_free(doc);
  setlocale(LC_NUMERIC, "C");
}

int main(void) {
  test_roundtrip();
  test_doubles();
  test_negative_zero();
  test_unicode();
  test_malformed();
  test_builder_misuse();
  test_file();
  test_locale();
  TEST_MAIN_END();
}
