/* qcow2x common library: creating a new qcow2 image.
 *
 * qcow2_create() writes a complete, empty image: header cluster
 * (header, header extensions, backing file name), refcount table,
 * refcount block(s), L1 table and, with preallocation, the L2 tables
 * and data clusters.  The layout is QEMU's (qemu-img create):
 *
 *   cluster 0            header, extensions, backing file name
 *   next T clusters      refcount table
 *   next B clusters      refcount blocks
 *   next L clusters      L1 table
 *   next N clusters      L2 tables          (preallocation only)
 *   next D clusters      data clusters      (preallocation only)
 *
 * Every cluster in use has refcount exactly 1 (qcow2.txt "Host cluster
 * management"), including the refcount structures themselves, so
 * `qemu-img check` finds neither errors nor leaks.  Because the data
 * clusters come last and in guest order, a preallocated image maps
 * guest offset G to host offset G + data_offset.
 *
 * Validation happens before the file is touched: a bad option never
 * truncates an existing file.  No nbdkit dependency.
 */
#ifndef QCX_CREATE_H
#define QCX_CREATE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "header.h"

enum qcow2_preallocation {
  QCOW2_PREALLOC_OFF,
  QCOW2_PREALLOC_METADATA,      /* L2 entries point at data clusters */
  QCOW2_PREALLOC_FALLOC,        /* ... and the data area is fallocated */
  QCOW2_PREALLOC_FULL,          /* ... and the data area is written */
};

#define QCOW2_DEFAULT_CLUSTER_SIZE (64u << 10)
#define QCOW2_DEFAULT_REFCOUNT_BITS 16

struct qcow2_create_options {
  uint64_t size;                /* virtual size in bytes; rounded up to
                                 * 512 like qemu-img (QEMU truncates a
                                 * size that is not a multiple of 512) */
  unsigned version;             /* 2 (compat=0.10) or 3; 0 means 3 */
  uint64_t cluster_size;        /* 512 .. 2 MiB, power of 2; 0: 64 KiB */
  bool extended_l2;             /* needs version 3, cluster_size >= 16K */
  enum qcow2_compression_type compression_type;  /* zstd needs v3 */
  const char *backing_file;     /* NULL: none; stored as given */
  const char *backing_format;   /* NULL: no backing format extension */
  enum qcow2_preallocation preallocation;
  unsigned refcount_bits;       /* 1, 2, 4, ..., 64; 0 means 16 */
  bool overwrite;               /* false: refuse an existing file */
};

/* Where everything goes, in clusters (see the picture above). */
struct qcow2_create_layout {
  unsigned cluster_bits;
  uint64_t cluster_size;
  uint64_t size;                        /* virtual size as stored */
  unsigned version;
  unsigned refcount_order;
  uint64_t l2_entries;                  /* entries per L2 table */
  unsigned l2_entry_size;               /* 8 or 16 */
  uint32_t l1_size;                     /* L1 entries */

  uint64_t reftable_offset, reftable_clusters;
  uint64_t refblocks_offset, refblocks;
  uint64_t l1_offset, l1_clusters;      /* l1_offset is 0 if l1_size 0 */
  uint64_t l2_offset, l2_tables;        /* preallocation only */
  uint64_t data_offset, data_clusters;  /* preallocation only */
  uint64_t total_clusters;              /* clusters with refcount 1 */
  uint64_t file_size;                   /* total_clusters * cluster_size */
};

/* Check OPTS and compute the layout without touching any file.
 * Returns 0, or -1 with *err (EINVAL for a bad option).
 */
int qcow2_create_layout (const struct qcow2_create_options *opts,
                         struct qcow2_create_layout *layout,
                         struct qcx_err *err);

/* Create the image PATH.  Without opts->overwrite an existing PATH is
 * refused with errnum EEXIST and left untouched.  The new file (and
 * its directory entry) is durable when this returns 0.  On failure a
 * partly written file is removed.
 */
int qcow2_create (const char *path, const struct qcow2_create_options *opts,
                  struct qcx_err *err);

/* Parse "off", "metadata", "falloc", "full" (-1 if none of them). */
int qcow2_preallocation_from_name (const char *name);
const char *qcow2_preallocation_name (enum qcow2_preallocation p);

#endif /* QCX_CREATE_H */
