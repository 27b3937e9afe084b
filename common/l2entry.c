/* qcow2x common library: the subcluster classifier (see l2entry.h). */
#include "l2entry.h"

const char *
qcow2_subcluster_type_name (enum qcow2_subcluster_type t)
{
  switch (t) {
  case QCOW2_SC_NORMAL: return "normal";
  case QCOW2_SC_ZERO_PLAIN: return "zero";
  case QCOW2_SC_ZERO_ALLOC: return "zero (host cluster kept)";
  case QCOW2_SC_UNALLOCATED_PLAIN: return "unallocated";
  case QCOW2_SC_UNALLOCATED_ALLOC: return "unallocated (host cluster kept)";
  case QCOW2_SC_COMPRESSED: return "compressed";
  case QCOW2_SC_INVALID: return "invalid";
  }
  return "?";
}

/* A host offset must be cluster aligned for every standard cluster;
 * QEMU treats an unaligned one as corruption, so do we.
 */
static bool
host_offset_aligned (const struct qcow2_l2_geometry *g, uint64_t host)
{
  return (host & ((1ULL << g->cluster_bits) - 1)) == 0;
}

static enum qcow2_subcluster_type
classify_standard (const struct qcow2_l2_geometry *g, uint64_t l2_entry)
{
  uint64_t host = qcow2_l2_host_offset (l2_entry);

  if (!host_offset_aligned (g, host))
    return QCOW2_SC_INVALID;
  /* Bit 0, the zero flag (v3; always clear in v2 images). */
  if (l2_entry & QCOW2_OFLAG_ZERO)
    return host ? QCOW2_SC_ZERO_ALLOC : QCOW2_SC_ZERO_PLAIN;
  return host ? QCOW2_SC_NORMAL : QCOW2_SC_UNALLOCATED_PLAIN;
}

/* Extended L2: bit pairs (zero, alloc) of 00, 01, 10 are valid; 11 is
 * invalid for any subcluster and makes the whole entry invalid, as in
 * QEMU.  An allocated subcluster needs a host offset.
 */
static enum qcow2_subcluster_type
classify_extended (const struct qcow2_l2_geometry *g, uint64_t l2_entry,
                   uint64_t bitmap, unsigned sc)
{
  uint64_t host = qcow2_l2_host_offset (l2_entry);
  uint32_t alloc = bitmap & QCOW2_SC_ALLOC_MASK;
  uint32_t zero = bitmap >> 32;

  if (alloc & zero)
    return QCOW2_SC_INVALID;
  if (!host_offset_aligned (g, host))
    return QCOW2_SC_INVALID;
  if (host) {
    if (alloc & (1u << sc))
      return QCOW2_SC_NORMAL;
    if (zero & (1u << sc))
      return QCOW2_SC_ZERO_ALLOC;
    return QCOW2_SC_UNALLOCATED_ALLOC;
  }
  if (alloc & (1u << sc))
    return QCOW2_SC_INVALID;
  if (zero & (1u << sc))
    return QCOW2_SC_ZERO_PLAIN;
  return QCOW2_SC_UNALLOCATED_PLAIN;
}

enum qcow2_subcluster_type
qcow2_classify_subcluster (const struct qcow2_l2_geometry *g,
                           uint64_t l2_entry, uint64_t bitmap, unsigned sc)
{
  /* Compressed clusters have no subclusters; the bitmap is reserved
   * and ignored on read ("Subcluster Allocation Bitmap for compressed
   * clusters").
   */
  if (l2_entry & QCOW2_OFLAG_COMPRESSED)
    return QCOW2_SC_COMPRESSED;
  if (g->extended_l2)
    return classify_extended (g, l2_entry, bitmap, sc);
  return classify_standard (g, l2_entry);
}

void
qcow2_decode_compressed (const struct qcow2_l2_geometry *g, uint64_t l2_entry,
                         struct qcow2_compressed_desc *d)
{
  /* x = 62 - (cluster_bits - 8): offset in bits 0..x-1, the number of
   * additional 512-byte sectors in bits x..61.
   */
  unsigned x = 62 - (g->cluster_bits - 8);
  uint64_t offset = l2_entry & ((1ULL << x) - 1);
  uint64_t nb_sectors = ((l2_entry & ~QCOW2_OFLAG_COPIED &
                          ~QCOW2_OFLAG_COMPRESSED) >> x) + 1;

  d->host_offset = offset;
  /* From the offset to the end of its last sector. */
  d->max_bytes = nb_sectors * 512 - (offset & 511);
}

uint64_t
qcow2_encode_compressed (const struct qcow2_l2_geometry *g, uint64_t host,
                         uint64_t len)
{
  /* The layout qcow2_decode_compressed reads: the number of sectors
   * after the one holding the first byte goes in bits x..61.
   */
  unsigned x = 62 - (g->cluster_bits - 8);
  uint64_t sectors = ((host + len - 1) >> 9) - (host >> 9);

  return QCOW2_OFLAG_COMPRESSED | (sectors << x) | host;
}

unsigned
qcow2_subcluster_extent_flags (enum qcow2_subcluster_type t,
                               bool layer_has_backing)
{
  switch (t) {
  case QCOW2_SC_NORMAL:
  case QCOW2_SC_COMPRESSED:
    return 0;
  case QCOW2_SC_ZERO_PLAIN:
    return QCX_EXTENT_HOLE | QCX_EXTENT_ZERO;
  case QCOW2_SC_ZERO_ALLOC:
    return QCX_EXTENT_ZERO;
  case QCOW2_SC_UNALLOCATED_PLAIN:
    return layer_has_backing ? QCX_EXTENT_HOLE
      : QCX_EXTENT_HOLE | QCX_EXTENT_ZERO;
  case QCOW2_SC_UNALLOCATED_ALLOC:
    return layer_has_backing ? QCX_EXTENT_HOLE : QCX_EXTENT_ZERO;
  case QCOW2_SC_INVALID:
    break;
  }
  return 0;
}
