/* Shared helpers of the kronvi command-line tool: errors, flag parsing, data loading and
 * output path checks. */
#define _POSIX_C_SOURCE 200809L /* PATH_MAX, NAME_MAX, access */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#ifndef PATH_MAX /* systems without a fixed limit */
#define PATH_MAX 4096
#endif
#ifndef NAME_MAX
#define NAME_MAX 255
#endif

int cli_error(const char *what) {
  const char *m = kvi_last_error();
  fprintf(stderr, "kronvi: %s%s%s\n", what, m[0] ? ": " : "", m);
  return 1;
}

bool cli_int(const char *flag, const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s ? s : "", &end, 10);
  if (!s || !*s || *end || errno || v < lo || v > hi) {
    fprintf(stderr, "kronvi: %s expects an integer in [%ld, %ld], got '%s'\n", flag, lo, hi,
            s ? s : "");
    return false;
  }
  *out = v;
  return true;
}

bool cli_double(const char *flag, const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s ? s : "", &end);
  if (!s || !*s || *end || errno || !(v >= lo && v <= hi)) {
    fprintf(stderr, "kronvi: %s expects a number in [%g, %g], got '%s'\n", flag, lo, hi,
            s ? s : "");
    return false;
  }
  *out = v;
  return true;
}

kvi_status cli_load_data(kvi_dataset *train, kvi_dataset *test, const char *path, bool regression,
                         int targets, const char *test_path, int64_t limit_train,
                         int64_t limit_test) {
  kvi_dataset_init(train);
  kvi_dataset_init(test);
  if (!path) return kvi_fail(KVI_ERR_ARG, "--data is required");
  if (regression) {
    kvi_status s = kvi_csv_load(train, path, targets);
    if (!s && limit_train > 0 && limit_train < train->n)
      s = kvi_dataset_truncate(train, limit_train);
    if (!s && test_path) s = kvi_csv_load(test, test_path, targets);
    if (s) kvi_dataset_free(train);
    return s;
  }
  struct stat st;
  if (stat(path, &st) != 0)
    return kvi_fail(KVI_ERR_IO,
                    "%s: %s (HINT: --data names a directory with the IDX or CIFAR-10 files)", path,
                    strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return kvi_fail(KVI_ERR_ARG, "%s: --data must be a directory for classification", path);
  /* images stay bytes (a quarter of the memory); readers take either form */
  return kvi_data_load_dir_bytes(train, test, path, limit_train, limit_test);
}

/* Room kept free at the end of an output path for the temporary name that atomic writes add
 * ("<path>.tmp.<pid>.<n>"), so that a path accepted here can be written. */
enum { CLI_TMP_ROOM = 32 };

/* Why the path itself cannot be written, or NULL: its length, then the file if it exists. */
static const char *file_problem(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *name = slash ? slash + 1 : path;
  if (path[0] == '\0') return "empty path";
  if (strlen(path) + CLI_TMP_ROOM >= PATH_MAX) return "path too long";
  if (name[0] == '\0') return "names a directory, not a file";
  if (strlen(name) + CLI_TMP_ROOM > NAME_MAX) return "file name too long";
  struct stat st;
  if (stat(path, &st) != 0) /* missing: dir_problem says whether it can be created */
    return errno == ENOENT || errno == ENOTDIR ? NULL : strerror(errno);
  if (S_ISDIR(st.st_mode)) return "is a directory";
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  if (access(path, W_OK) != 0) return "file is not writable";
  return NULL;
}

/* Why no file can be created in the directory part of path, or NULL. */
static const char *dir_problem(const char *path) {
  char dir[PATH_MAX] = ".";
  const char *slash = strrchr(path, '/');
  if (slash) {
    size_t n = slash == path ? 1 : (size_t)(slash - path); /* "/x": the root */
    memcpy(dir, path, n);
    dir[n] = '\0';
  }
  struct stat st;
  if (stat(dir, &st) != 0)
    return errno == ENOENT ? "the directory does not exist" : strerror(errno);
  if (!S_ISDIR(st.st_mode)) return "the directory part names a file, not a directory";
  if (access(dir, W_OK | X_OK) != 0) return "the directory is not writable";
  return NULL;
}

bool cli_check_writable(const char *flag, const char *path) {
  const char *why = file_problem(path);
  if (!why) why = dir_problem(path);
  if (!why) return true;
  int shown = strlen(path) > 80 ? 60 : 80; /* long paths: their beginning */
  fprintf(stderr, "kronvi: %s %.*s%s: %s\n", flag, shown, path, shown < 80 ? "..." : "", why);
  return false;
}

bool cli_size(const char *flag, const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s ? s : "", &end);
  double mult = 1;
  if (s && end != s && *end && !end[1]) {
    const char u = *end;
    mult = u == 'K' || u == 'k' ? 1e3 : u == 'M' || u == 'm' ? 1e6 : u == 'G' || u == 'g' ? 1e9 : 0;
    if (mult > 0) end++;
  }
  if (!s || !*s || *end || errno || !(v > 0) || !(mult > 0) || v * mult > 1e15) {
    fprintf(stderr,
            "kronvi: %s expects a positive size such as 2000000000, 500M or 64G, got '%s'\n", flag,
            s ? s : "");
    return false;
  }
  *out = v * mult;
  return true;
}

/* OpenBLAS reads OPENBLAS_CORETYPE once, when it loads; so when it fell back to old kernels on a
 * CPU with AVX2 / AVX-512 (kvi_blas_better_core), the tool sets the variable and executes itself
 * again. A user's own OPENBLAS_CORETYPE is never overridden, and KRONVI_BLAS_PICK=0 turns this
 * off. KRONVI_BLAS_DETECTED records what OpenBLAS had chosen, for --version and the logs. */
void cli_pick_blas_core(char **argv) {
  const char *off = getenv("KRONVI_BLAS_PICK");
  if (getenv("OPENBLAS_CORETYPE") || (off && !strcmp(off, "0"))) return;
  const char *better = kvi_blas_better_core();
  if (!better) return;
  if (setenv("OPENBLAS_CORETYPE", better, 1) || setenv("KRONVI_BLAS_DETECTED", kvi_blas_core(), 1))
    return;
  execv("/proc/self/exe", argv);
  unsetenv("OPENBLAS_CORETYPE"); /* no /proc: go on with OpenBLAS's own choice */
  unsetenv("KRONVI_BLAS_DETECTED");
}

const char *cli_blas_description(void) {
  static char buf[128];
  const char *det = getenv("KRONVI_BLAS_DETECTED");
  if (det && *det)
    snprintf(buf, sizeof buf, "%s (OpenBLAS detected %s)", kvi_blas_core(), det);
  else
    snprintf(buf, sizeof buf, "%s", kvi_blas_core());
  return buf;
}
