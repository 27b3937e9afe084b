/* qcow2x common library: a backing chain, read-only.
 *
 * The layers below an overlay, in order: layer 0 is the overlay's
 * backing file, layer 1 that file's backing file, and so on.  Each is
 * a qcow2 image (any kind this library reads) or a raw file.  Names
 * are resolved as QEMU does: relative names against the directory of
 * the image that names them.  Loops (by device and inode, so symlinks
 * are seen through) and chains deeper than a limit are refused.
 *
 * Reads and block status of the chain resolve each byte at the first
 * layer that has it; unallocated space of the last layer, and space
 * past the end of a layer, read as zero.  In block status a backing
 * layer's zero clusters are holes (HOLE|ZERO) even where that layer
 * keeps a host cluster: the export has nothing allocated there, as
 * `qemu-img map` of the chain shows (such a host offset belongs to a
 * lower layer, not to the image being served).
 *
 * Ownership: qcow2_chain_open() fills a caller-owned struct that
 * qcow2_chain_close() empties.  Thread safety: reads and extents may be
 * called from many threads at once (each qcow2 layer has its own lock).
 */
#ifndef QCX_CHAIN_H
#define QCX_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "image.h"
#include "io.h"

/* The deepest chain chain-max-depth may allow. */
#define QCOW2_CHAIN_MAX_DEPTH_LIMIT 256

enum qcow2_layer_kind { QCOW2_LAYER_QCOW2, QCOW2_LAYER_RAW };

struct qcow2_chain_layer {
  enum qcow2_layer_kind kind;
  char *path;
  struct qcow2_image *img;      /* qcow2 */
  struct qcx_io raw;            /* raw */
  uint64_t size;                /* guest size of this layer */
};

struct qcow2_chain {
  struct qcow2_chain_layer *layers;
  size_t nr;
  uint64_t top_cluster_size;    /* of the overlay */
};

struct qcow2_chain_options {
  /* The overlay on top of the chain (not opened as a layer). */
  const char *top_path;
  /* Replace (or supply) the top's backing file; NULL: the header's. */
  const char *backing_override;
  const char *backing_override_format;  /* "qcow2", "raw" or NULL: probe */
  unsigned max_layers;          /* use at most this many layers */
  unsigned max_depth;           /* refuse longer chains */
};

int qcow2_chain_open (struct qcow2_chain *chain,
                      const struct qcow2_chain_options *opts,
                      struct qcx_err *err);
void qcow2_chain_close (struct qcow2_chain *chain);

/* Read [offset, offset+count) as seen from layer FIRST down. */
int qcow2_chain_read (struct qcow2_chain *chain, size_t first, void *buf,
                      uint64_t count, uint64_t offset, struct qcx_err *err);

/* Block status from layer FIRST down: like qcow2_image_extents (flags
 * QCX_EXTENT_*: 0 data in some layer, HOLE|ZERO otherwise).
 */
int qcow2_chain_extents (struct qcow2_chain *chain, size_t first,
                         uint64_t offset, uint64_t count,
                         qcow2_extent_cb cb, void *opaque,
                         struct qcx_err *err);

#endif /* QCX_CHAIN_H */
