/* kronvi data: loaders for IDX (MNIST / Fashion-MNIST, gzipped or plain), CIFAR-10 binary
 * batches and numeric CSV; splitting, standardization, padding, epoch shuffles, mini-batch
 * gathering and horizontal-flip augmentation. docs/data.md describes the formats.
 *
 * Ownership: a kvi_dataset owns its arrays (allocated with kvi_alloc); release them with
 * kvi_dataset_free. Every loader and every function that fills a dataset passed as an output
 * (`out`, `train`, `test`, `val`) overwrites it without freeing what it held, so it need not be
 * initialized; on failure the output is left empty (as after kvi_dataset_init) and nothing leaks.
 *
 * Errors: functions return a kvi_status and leave a message (kvi_last_error) naming the file,
 * what was expected and what was found, with a `HINT:` where one helps. Nothing exits. */
#ifndef KRONVI_DATA_H
#define KRONVI_DATA_H

#include "kronvi/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- dataset ----------------------------------------------------------------------------- */
typedef struct {
  int64_t n;    /* rows */
  int d;        /* features per row = c*h*w for images */
  int c, h, w;  /* image shape (channels, height, width), HWC order in x; 0 for tabular */
  int nclasses; /* classification: number of classes (max label + 1); 0 for regression */
  int k;        /* regression: number of targets; 0 for classification */
  kvi_real *x;  /* (n, d) row-major features; NULL when they are held as bytes (x8) */
  int32_t *y;   /* (n) class labels in [0, nclasses), NULL for regression */
  kvi_real *t;  /* (n, k) row-major regression targets, NULL for classification */
  /* Images held as bytes (kvi_data_load_dir_bytes): a quarter of the memory of x. Feature j of
   * row i is lut[x8[i d + j]] (lut[b] = b / 255 as loaded; kvi_dataset_normalize_scalar maps
   * the table, not the bytes). Read rows with kvi_batch_gather or kvi_dataset_rows, which take
   * either form; kvi_dataset_expand turns them into x. NULL for float datasets. */
  uint8_t *x8;
  kvi_real lut[256];
} kvi_dataset;

KVI_API void kvi_dataset_init(kvi_dataset *ds); /* all zero / NULL */
KVI_API void kvi_dataset_free(kvi_dataset *ds); /* frees the arrays, then re-initializes */
/* Allocates a zero-filled dataset of n rows and d features; nclasses > 0 allocates labels y,
 * k > 0 allocates targets t (at most one of them). c, h, w: image shape (c*h*w must equal d)
 * or all 0 for tabular data. */
KVI_API kvi_status kvi_dataset_alloc(kvi_dataset *ds, int64_t n, int d, int c, int h, int w,
                                     int nclasses, int k);
/* Consistency check: shapes, non-NULL arrays, image shape product, labels in [0, nclasses).
 * `what` names the dataset in the message ("train", "test"). */
KVI_API kvi_status kvi_dataset_validate(const kvi_dataset *ds, const char *what);
/* Keeps the first n rows (n >= ds->n: nothing changes). Memory is not returned. */
KVI_API kvi_status kvi_dataset_truncate(kvi_dataset *ds, int64_t n);
/* Rows [r0, r0 + n) as features: a pointer into x, or, for a dataset held as bytes, buf (n * d
 * numbers, which the caller provides) filled from x8 (the same numbers x would hold). NULL if
 * the range is outside the dataset or a byte dataset gets no buf. */
KVI_API const kvi_real *kvi_dataset_rows(const kvi_dataset *ds, int64_t r0, int64_t n,
                                         kvi_real *buf);
/* A dataset held as bytes gets x (n * d numbers, equal to what its rows read) and loses x8;
 * a float dataset is left as it is. */
KVI_API kvi_status kvi_dataset_expand(kvi_dataset *ds);

/* ---- IDX (MNIST / Fashion-MNIST) --------------------------------------------------------- */
/* IDX files, gzipped or plain (zlib reads both). Sizes come from the headers: images have magic
 * 0x00000803 (unsigned bytes, 3 dims: n, rows, cols), labels 0x00000801 (1 dim: n). Pixels are
 * scaled to [0, 1]; c = 1, h = rows, w = cols, nclasses = max label + 1. Checks: magic, sizes
 * (n <= 1e8, rows and cols in 1..4096), truncated data, trailing data, count mismatch. */
KVI_API kvi_status kvi_idx_load(kvi_dataset *out, const char *images_path, const char *labels_path);
/* Same, keeping only the first `limit` rows (0 = all). Only those rows' pixels are read, so the
 * rest of the images file is not checked; all labels are read (nclasses counts all of them). */
KVI_API kvi_status kvi_idx_load_limit(kvi_dataset *out, const char *images_path,
                                      const char *labels_path, int64_t limit);
/* Finds {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (also the "train-images.idx3-ubyte"
 * spelling) in dir and loads both splits; limit_train / limit_test keep only the first N rows
 * (0 = all). train and test get the same nclasses (max over both label files). Fashion-MNIST:
 * dir = "/usr/share/datasets/fashion-mnist" (Debian package dataset-fashion-mnist). */
KVI_API kvi_status kvi_idx_load_dir(kvi_dataset *train, kvi_dataset *test, const char *dir,
                                    int64_t limit_train, int64_t limit_test);

/* ---- CSV (tabular regression) ------------------------------------------------------------ */
/* Numeric columns separated by commas (or, if the first data line has no comma, by spaces and
 * tabs); whitespace around fields is ignored; blank lines and lines starting with '#' are
 * skipped; an optional header line is detected (first line with a non-numeric field); gzipped
 * files are read too. The LAST ntargets columns are the regression targets (ntargets >= 1, and
 * at least one feature column must remain). Errors: ragged rows and empty fields (line number),
 * NaN/Inf or non-numeric fields (line and column), no data rows, ntargets >= columns. */
KVI_API kvi_status kvi_csv_load(kvi_dataset *out, const char *path, int ntargets);

/* ---- CIFAR-10 binary --------------------------------------------------------------------- */
/* One batch file: records of 1 label byte + 3072 pixel bytes (3x32x32, CHW in the file; stored
 * HWC); the file size must be a multiple of 3073, labels < 10. Pixels scaled to [0, 1]; nclasses
 * = 10. */
KVI_API kvi_status kvi_cifar_load_file(kvi_dataset *out, const char *path);
/* data_batch_1.bin .. data_batch_5.bin (train) and test_batch.bin (test) from dir, or from
 * dir/cifar-10-batches-bin/ (the layout of the official archive). All six files must exist;
 * with a limit, batches after the one that completes it are not read. */
KVI_API kvi_status kvi_cifar_load_dir(kvi_dataset *train, kvi_dataset *test, const char *dir,
                                      int64_t limit_train, int64_t limit_test);

/* ---- any of the above -------------------------------------------------------------------- */
/* What `--data DIR` uses: IDX files if the directory holds them, else CIFAR-10 batches; the
 * message lists the file names looked for when it holds neither. */
KVI_API kvi_status kvi_data_load_dir(kvi_dataset *train, kvi_dataset *test, const char *dir,
                                     int64_t limit_train, int64_t limit_test);
/* The same, with the pixels kept as bytes (x8; x NULL): the same rows through kvi_batch_gather
 * and kvi_dataset_rows in a quarter of the memory, and no float copy while loading. The
 * transforms below take byte datasets: split, pad (before a normalization) and scalar
 * normalization keep the bytes; per-feature standardization and per-channel normalization
 * expand them first. */
KVI_API kvi_status kvi_data_load_dir_bytes(kvi_dataset *train, kvi_dataset *test, const char *dir,
                                           int64_t limit_train, int64_t limit_test);

/* ---- transforms -------------------------------------------------------------------------- */
/* Moves nval rows into val (overwritten): the rows at positions n-nval..n-1 of a permutation
 * drawn from kvi_rng_stream(seed, 0x5350u) ("SP"). Both parts keep the original relative order
 * of their rows. Deterministic for a seed. 0 <= nval < ds->n; nval = 0 leaves val empty. */
KVI_API kvi_status kvi_dataset_split(kvi_dataset *ds, kvi_dataset *val, int64_t nval,
                                     uint64_t seed);
/* Per-feature standardization: mean and (population) std of every feature over ref, std below
 * 1e-6 replaced by 1, then ds->x = (x - mean) / std. ref may be ds itself; call it with
 * ref = train for train, val and test. If mean_out / std_out are not NULL they receive arrays
 * of d values (caller frees with kvi_free). */
KVI_API kvi_status kvi_dataset_standardize(kvi_dataset *ds, const kvi_dataset *ref,
                                           kvi_real **mean_out, kvi_real **std_out);
/* Applies given per-feature mean/std (d values each, std > 0), e.g. stored with a model. */
KVI_API kvi_status kvi_dataset_apply_standardize(kvi_dataset *ds, const kvi_real *mean,
                                                 const kvi_real *std);
/* The same for the regression targets t (k values each); ref may be ds. */
KVI_API kvi_status kvi_dataset_standardize_targets(kvi_dataset *ds, const kvi_dataset *ref,
                                                   kvi_real **mean_out, kvi_real **std_out);
/* Mean and standard deviation over all n x d input values (two passes in double, sequential:
 * the same bits on any thread count); fails on an empty dataset or a constant one. */
KVI_API kvi_status kvi_dataset_pixel_stats(const kvi_dataset *ds, double *mean, double *std);
/* Whole-dataset scalar normalization for images: x = (x - mean) / std, std > 0. */
KVI_API kvi_status kvi_dataset_normalize_scalar(kvi_dataset *ds, kvi_real mean, kvi_real std);
/* Per-channel normalization of images: x[c] = (x[c] - mean[c]) / std[c], ds->c values each. */
KVI_API kvi_status kvi_dataset_normalize_channels(kvi_dataset *ds, const kvi_real *mean,
                                                  const kvi_real *std);
/* Pads images by `pad` zero pixels on every side (28x28 -> 32x32 with pad 2), keeping HWC. */
KVI_API kvi_status kvi_dataset_pad(kvi_dataset *ds, int pad);

/* ---- mini-batches ------------------------------------------------------------------------ */
typedef struct {
  int64_t n;
  int64_t *order; /* (n) a permutation of 0..n-1 */
} kvi_epoch_order;

/* Allocates the order, set to the identity 0..n-1. */
KVI_API kvi_status kvi_epoch_order_init(kvi_epoch_order *o, int64_t n);
KVI_API void kvi_epoch_order_free(kvi_epoch_order *o);
/* order = Fisher-Yates shuffle of the identity with kvi_rng_stream(seed, epoch): a function of
 * (seed, epoch) only, whatever the previous contents. Use a seed for data that differs from the
 * one used for weights and noise. */
KVI_API void kvi_epoch_order_shuffle(kvi_epoch_order *o, uint64_t seed, uint64_t epoch);
/* x_out (b, d) = rows idx[0..b) of ds->x; y_out (b) and t_out (b, k) likewise when both they
 * and the dataset's arrays are non-NULL. idx NULL means rows 0..b-1. */
KVI_API void kvi_batch_gather(kvi_real *x_out, int32_t *y_out, kvi_real *t_out,
                              const kvi_dataset *ds, const int64_t *idx, int b);
/* Mirrors one image (c, h, w) left-right in place. */
KVI_API void kvi_image_hflip(kvi_real *x, int c, int h, int w);
/* Augmentation: each of the b images (c, h, w) of x (b, c*h*w) is mirrored with probability 1/2,
 * decided by the top bit of one kvi_rng_u32 draw per image (so rng advances by b blocks).
 * rng NULL mirrors every image. */
KVI_API void kvi_batch_hflip(kvi_real *x, int b, int c, int h, int w, kvi_rng *rng);

#ifdef __cplusplus
}
#endif
#endif
