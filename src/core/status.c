/* Status codes, the thread-local detail message and the KVI_ASSERT failure path. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/core.h"

static _Thread_local char kvi__errbuf[1024];

const char *kvi_status_str(kvi_status s) {
  switch (s) {
#define KVI__STR(name, code, msg) \
  case name:                      \
    return msg;
    KVI_STATUS_TABLE(KVI__STR)
#undef KVI__STR
  }
  return "unknown status";
}

const char *kvi_status_name(kvi_status s) {
  switch (s) {
#define KVI__NAME(name, code, msg) \
  case name:                       \
    return #name;
    KVI_STATUS_TABLE(KVI__NAME)
#undef KVI__NAME
  }
  return "KVI_UNKNOWN";
}

const char *kvi_last_error(void) { return kvi__errbuf; }

void kvi_clear_error(void) { kvi__errbuf[0] = 0; }

kvi_status kvi_fail(kvi_status s, const char *fmt, ...) {
  /* format into a local buffer first: the arguments may point into kvi__errbuf itself */
  char tmp[sizeof kvi__errbuf];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  memcpy(kvi__errbuf, tmp, sizeof tmp);
  return s;
}

void kvi_assert_fail(const char *cond, const char *file, int line) {
  fprintf(stderr, "kronvi: internal error: %s at %s:%d\n", cond, file, line);
  fflush(stderr);
  abort();
}
