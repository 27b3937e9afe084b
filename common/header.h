/* qcow2x common library: the qcow2 header and its extensions.
 *
 * qcow2_header_parse() reads and validates the first cluster of an
 * image (qcow2.txt, "Header" and "Header extensions") and fills a
 * struct qcow2_header with the fields and the values derived from
 * them.  Every field is checked against the spec and against the file
 * size before anyone uses it; the result owns a few heap strings,
 * released by qcow2_header_free().
 *
 * Policy decisions at parse time (design.md §2, §4):
 *   - unknown incompatible bits refuse the open, naming the feature
 *     from the feature name table when it has one;
 *   - encryption and external data files are refused (not supported);
 *   - the corrupt and dirty bits are reported, not refused: the caller
 *     decides (read-only with a warning, repair, ...).
 */
#ifndef QCX_HEADER_H
#define QCX_HEADER_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "io.h"

#define QCOW2_MAGIC 0x514649fbu                 /* "QFI\xfb" */
#define QCOW2_V2_HEADER_LENGTH 72
#define QCOW2_V3_HEADER_LENGTH 104              /* up to header_length */

/* Incompatible feature bits (qcow2.txt, header bytes 72-79). */
#define QCOW2_INCOMPAT_DIRTY        (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT      (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE    (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION  (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2        (1ULL << 4)
#define QCOW2_INCOMPAT_KNOWN        0x1fULL

/* Compatible and autoclear bits (header bytes 80-95). */
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ULL << 0)
#define QCOW2_AUTOCLEAR_BITMAPS     (1ULL << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ULL << 1)

/* Header extension types ("Header extensions"). */
#define QCOW2_EXT_END               0x00000000u
#define QCOW2_EXT_BACKING_FORMAT    0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE     0x6803f857u
#define QCOW2_EXT_BITMAPS           0x23852875u
#define QCOW2_EXT_CRYPTO            0x0537be77u
#define QCOW2_EXT_DATA_FILE         0x44415441u

enum qcow2_compression_type {
  QCOW2_COMPRESSION_ZLIB = 0,
  QCOW2_COMPRESSION_ZSTD = 1,
};

/* Implementation limits, all at least as large as QEMU's. */
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21               /* 2 MiB */
#define QCOW2_MIN_EXTL2_CLUSTER_BITS 14         /* 16 KiB */
#define QCOW2_MAX_L1_BYTES (32u << 20)          /* QEMU: 32 MiB */
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)     /* QEMU: 8 MiB */
#define QCOW2_MAX_BACKING_NAME 1023
#define QCOW2_MAX_SNAPSHOTS 65536

struct qcow2_feature_name {
  uint8_t type;                 /* 0 incompatible, 1 compatible, 2 autoclear */
  uint8_t bit;
  char name[47];                /* NUL-terminated */
};

struct qcow2_header {
  /* Fields as stored (after validation). */
  uint32_t version;
  uint64_t backing_file_offset;
  uint32_t backing_file_size;
  uint32_t cluster_bits;
  uint64_t size;                        /* virtual disk size */
  uint32_t crypt_method;
  uint32_t l1_size;
  uint64_t l1_table_offset;
  uint64_t refcount_table_offset;
  uint32_t refcount_table_clusters;
  uint32_t nb_snapshots;
  uint64_t snapshots_offset;
  uint64_t incompatible_features;
  uint64_t compatible_features;
  uint64_t autoclear_features;
  uint32_t refcount_order;
  uint32_t header_length;
  enum qcow2_compression_type compression_type;

  /* Derived values. */
  uint64_t cluster_size;
  bool extended_l2;
  unsigned l2_entry_size;               /* 8, or 16 with extended L2 */
  uint64_t l2_entries;                  /* entries in one L2 table */
  unsigned l2_bits;                     /* log2 (l2_entries) */
  unsigned subclusters;                 /* 32 with extended L2, else 1 */
  unsigned subcluster_bits;             /* log2 (subcluster size) */
  uint64_t subcluster_size;
  uint64_t l1_size_needed;              /* entries to map the virtual size */

  /* Extensions. */
  char *backing_file;                   /* NULL if none */
  char *backing_format;                 /* NULL if no extension */
  bool has_bitmaps_ext;
  uint32_t nb_bitmaps;
  uint64_t bitmap_directory_size;
  uint64_t bitmap_directory_offset;
  struct qcow2_feature_name *feature_names;
  unsigned nr_feature_names;
  uint64_t extensions_end;              /* first byte after the ext. area */
};

/* Parse and validate the header of the image in IO. */
int qcow2_header_parse (const struct qcx_io *io, struct qcow2_header *h,
                        struct qcx_err *err);

void qcow2_header_free (struct qcow2_header *h);

/* Name of feature TYPE/BIT from the image's feature name table, or
 * NULL if the table does not name it.
 */
const char *qcow2_feature_name (const struct qcow2_header *h,
                                unsigned type, unsigned bit);

#endif /* QCX_HEADER_H */
