/* Shared helpers of the kronvi command-line tool. */
#ifndef KRONVI_CLI_H
#define KRONVI_CLI_H

#include "kronvi/data.h"
#include "kronvi/io.h"
#include "kronvi/train.h"

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_laplace(int argc, char **argv);
int cmd_vae(int argc, char **argv);
int cmd_optimize(int argc, char **argv);

/* Prints "kronvi: <what>: <library message>" and returns 1. */
int cli_error(const char *what);
/* Strict number parsing for flags: prints an error naming the flag and returns false. */
bool cli_int(const char *flag, const char *s, long lo, long hi, long *out);
bool cli_double(const char *flag, const char *s, double lo, double hi, double *out);
/* A size in bytes with an optional K, M or G (powers of 1000) suffix. */
bool cli_size(const char *flag, const char *s, double *out);
/* Loads the classification data of a directory (IDX or CIFAR-10) or a regression CSV. */
kvi_status cli_load_data(kvi_dataset *train, kvi_dataset *test, const char *path, bool regression,
                         int targets, const char *test_path, int64_t limit_train,
                         int64_t limit_test);
/* Checks, before any work, that an output file (--save, --log, --out) can be written: the
 * path's length, that its directory exists and is writable, and that the file, if it exists,
 * is a writable regular file. Prints "kronvi: FLAG PATH: reason" and returns false if not. */
bool cli_check_writable(const char *flag, const char *path);
/* Re-executes the tool with OPENBLAS_CORETYPE set when OpenBLAS fell back to kernels older than
 * the CPU (see kvi_blas_better_core); returns when nothing is to be done or exec failed. */
void cli_pick_blas_core(char **argv);
/* "SkylakeX" or "SkylakeX (OpenBLAS detected Prescott)", for --version and logs. */
const char *cli_blas_description(void);

/* PNG files through libpng (cli_png.c), written atomically: px holds h rows of w pixels of
 * `channels` bytes (1: gray, 3: RGB). */
kvi_status cli_write_png(const char *path, const unsigned char *px, int w, int h, int channels);
/* n images of h x w values in [0, 1] (clamped; 1 is white) as a grid of `cols` columns with
 * 2-pixel gray gaps, every pixel drawn scale x scale. */
kvi_status cli_png_grid(const char *path, const kvi_real *img, int n, int h, int w, int cols,
                        int scale);

/* kronvi report --png (report_png.c): each weight layer's pruning mask as <prefix><layer>.png;
 * prints the files; returns the exit code. */
int cli_report_png(kvi_net *net, double threshold, const char *prefix);

#endif
