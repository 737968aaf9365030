/* Private helpers of the data module: file reading through zlib (plain or gzipped) and paths. */
#ifndef KRONVI_DATA_INTERNAL_H
#define KRONVI_DATA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kronvi/data.h"

/* A file opened with gzopen: reads gzipped and plain files alike. */
typedef struct {
  void *gz;         /* gzFile */
  const char *path; /* for messages (not owned) */
  const char *what; /* "images file", "CSV file", ... */
  bool gzipped;     /* starts with the gzip magic 1f 8b */
} kvi__reader;

/* Opens path; KVI_ERR_IO with strerror and a hint when it cannot be opened. */
kvi_status kvi__reader_open(kvi__reader *r, const char *path, const char *what);
void kvi__reader_close(kvi__reader *r);
/* Reads up to n bytes into buf; *got = bytes read (< n only at end of data). A read error or a
 * corrupt / truncated gzip stream is KVI_ERR_IO / KVI_ERR_FORMAT with a message. */
kvi_status kvi__reader_read(kvi__reader *r, void *buf, size_t n, size_t *got);
/* Reads up to max bytes (stopping at end of data) into a new malloc'd buffer (*buf, free with
 * free(), one spare byte after the data for a terminator); *got = bytes read. With *got == max
 * more data may follow (kvi__reader_expect_end tells). */
kvi_status kvi__reader_read_all(kvi__reader *r, size_t max, unsigned char **buf, size_t *got);
/* KVI_ERR_FORMAT unless the reader is at end of data ("trailing data" message). */
kvi_status kvi__reader_expect_end(kvi__reader *r, const char *hint);

/* dir + "/" + name into out (size cap); false if it does not fit. */
bool kvi__path_join(char *out, size_t cap, const char *dir, const char *name);
bool kvi__file_exists(const char *path);
bool kvi__dir_exists(const char *path);

/* lut[i] = i / 255 for i in 0..255 (pixel bytes to [0, 1]). */
void kvi__byte_scale(kvi_real lut[256]);
/* Allocates a byte dataset (x8 zero-filled, lut = kvi__byte_scale, labels for nclasses > 0),
 * or, when pix is not NULL, one that takes pix (n * d bytes from malloc) as its x8. */
kvi_status kvi__dataset_alloc_bytes(kvi_dataset *ds, int64_t n, int d, int c, int h, int w,
                                    int nclasses, unsigned char *pix);
/* kvi_idx_load_dir / kvi_cifar_load_dir / kvi_data_load_dir with the pixels kept as bytes. */
kvi_status kvi__idx_load_dir(kvi_dataset *train, kvi_dataset *test, const char *dir,
                             int64_t limit_train, int64_t limit_test, bool bytes);
kvi_status kvi__cifar_load_dir(kvi_dataset *train, kvi_dataset *test, const char *dir,
                               int64_t limit_train, int64_t limit_test, bool bytes);
/* Row split and padding of a byte dataset (kvi_dataset_split, kvi_dataset_pad). */
kvi_status kvi__split_bytes(kvi_dataset *ds, kvi_dataset *val, const unsigned char *isval,
                            int64_t nval);
kvi_status kvi__pad_bytes(kvi_dataset *ds, int pad);

#endif
