/* qcow2x common library: L1/L2 entries and the subcluster classifier.
 *
 * One function, qcow2_classify_subcluster(), maps (L2 entry, subcluster
 * allocation bitmap, subcluster index) to a small enum, and every
 * consumer (read, extents, and later write and check) switches on that
 * enum instead of testing bits (qcow2.txt "Cluster mapping" and
 * "Extended L2 Entries").  Images without extended L2 entries are
 * treated as having one subcluster per cluster.
 *
 * These are pure functions: no locking, no I/O.
 */
#ifndef QCX_L2ENTRY_H
#define QCX_L2ENTRY_H

#include <stdbool.h>
#include <stdint.h>

/* L1 entry: bits 9-55 offset of the L2 table, bit 63 "copied". */
#define QCOW2_L1E_OFFSET_MASK   0x00fffffffffffe00ULL
#define QCOW2_L1E_RESERVED_MASK 0x7f000000000001ffULL
/* L2 entry (standard cluster descriptor and flags). */
#define QCOW2_L2E_OFFSET_MASK   0x00fffffffffffe00ULL
#define QCOW2_OFLAG_COPIED      (1ULL << 63)
#define QCOW2_OFLAG_COMPRESSED  (1ULL << 62)
#define QCOW2_OFLAG_ZERO        (1ULL << 0)
/* Subcluster allocation bitmap: low half "allocated", high half "zero". */
#define QCOW2_SC_ALLOC_MASK     0x00000000ffffffffULL

enum qcow2_subcluster_type {
  /* Reads from this layer's host cluster. */
  QCOW2_SC_NORMAL,
  /* Reads as zero; no host cluster. */
  QCOW2_SC_ZERO_PLAIN,
  /* Reads as zero; a host cluster is kept (preallocation). */
  QCOW2_SC_ZERO_ALLOC,
  /* Not in this layer: defers to the backing file, or zero if none. */
  QCOW2_SC_UNALLOCATED_PLAIN,
  /* Not in this layer, but a host cluster is reserved for it. */
  QCOW2_SC_UNALLOCATED_ALLOC,
  /* A compressed cluster (never has subclusters). */
  QCOW2_SC_COMPRESSED,
  /* A combination the spec forbids: reading it is an error. */
  QCOW2_SC_INVALID,
};

const char *qcow2_subcluster_type_name (enum qcow2_subcluster_type t);

/* Geometry needed to interpret entries. */
struct qcow2_l2_geometry {
  unsigned cluster_bits;
  bool extended_l2;
};

/* Classify subcluster SC (0..31, 0 without extended L2) of the cluster
 * described by L2_ENTRY and BITMAP (ignored without extended L2).
 */
enum qcow2_subcluster_type
qcow2_classify_subcluster (const struct qcow2_l2_geometry *g,
                           uint64_t l2_entry, uint64_t bitmap, unsigned sc);

/* Host offset of a standard cluster (0 if none). */
static inline uint64_t
qcow2_l2_host_offset (uint64_t l2_entry)
{
  return l2_entry & QCOW2_L2E_OFFSET_MASK;
}

/* Compressed cluster descriptor (qcow2.txt "Compressed Clusters
 * Descriptor"): host byte offset and the number of bytes from there to
 * the end of the last 512-byte sector the data may use.
 */
struct qcow2_compressed_desc {
  uint64_t host_offset;
  uint64_t max_bytes;
};

void qcow2_decode_compressed (const struct qcow2_l2_geometry *g,
                              uint64_t l2_entry,
                              struct qcow2_compressed_desc *d);
/* The L2 entry of a compressed cluster whose LEN bytes start at host
 * byte HOST (no COPIED flag: compressed clusters never have it).
 */
uint64_t qcow2_encode_compressed (const struct qcow2_l2_geometry *g,
                                  uint64_t host, uint64_t len);

/* True if the subcluster type has a host cluster behind it. */
static inline bool
qcow2_subcluster_has_host (enum qcow2_subcluster_type t)
{
  return t == QCOW2_SC_NORMAL || t == QCOW2_SC_ZERO_ALLOC ||
    t == QCOW2_SC_UNALLOCATED_ALLOC;
}

/* Block status of a subcluster in the NBD sense (design.md §2).  The
 * values match NBD_STATE_HOLE and NBD_STATE_ZERO.  LAYER_HAS_BACKING
 * says whether unallocated space defers to a backing file (HOLE
 * without ZERO) or reads as zero.
 */
#define QCX_EXTENT_HOLE 1u
#define QCX_EXTENT_ZERO 2u
unsigned qcow2_subcluster_extent_flags (enum qcow2_subcluster_type t,
                                        bool layer_has_backing);

#endif /* QCX_L2ENTRY_H */
