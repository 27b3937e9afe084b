/* qcow2x common library: guest-to-host mapping through the L1 and L2
 * tables (qcow2.txt "Cluster mapping", "Extended L2 Entries").
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "byteorder.h"
#include "image.h"

/* The L2 table for L1 entry L1_INDEX, or *table = NULL if the entry is
 * empty.  Called with img->lock held.
 */
static int
get_l2_table (struct qcow2_image *img, uint64_t l1_index,
              const uint8_t **table, struct qcx_err *err)
{
  const struct qcow2_header *h = &img->header;
  uint64_t l2_offset = img->l1_table[l1_index] & QCOW2_L1E_OFFSET_MASK;

  *table = NULL;
  if (l2_offset == 0)
    return 0;
  if (l2_offset & (h->cluster_size - 1))
    return qcx_error (err, EIO, "L2 table offset 0x%" PRIx64 " (L1 entry %"
                      PRIu64 ") is not aligned to a cluster boundary",
                      l2_offset, l1_index);
  if (!qcx_io_contains (&img->io, l2_offset, h->cluster_size))
    return qcx_error (err, EIO, "L2 table at offset 0x%" PRIx64 " (L1 entry %"
                      PRIu64 ") is beyond the end of the file", l2_offset,
                      l1_index);
  *table = tablecache_get (&img->l2_tables, &img->io, l2_offset, err);
  return *table ? 0 : -1;
}

struct l2_cursor {
  const struct qcow2_header *h;
  const struct qcow2_l2_geometry *g;
  const uint8_t *table;
  uint64_t table_base;          /* guest offset mapped by entry 0 */
};

/* Classify the subcluster holding guest offset POS (inside the table);
 * also return its L2 entry.
 */
static enum qcow2_subcluster_type
classify_at (const struct l2_cursor *c, uint64_t pos, uint64_t *l2_entry)
{
  uint64_t rel = pos - c->table_base;
  uint64_t index = rel >> c->h->cluster_bits;
  const uint8_t *e = c->table + index * c->h->l2_entry_size;
  uint64_t bitmap = c->h->extended_l2 ? load_be64 (e + 8) : 0;
  unsigned sc = (rel & (c->h->cluster_size - 1)) >> c->h->subcluster_bits;

  *l2_entry = load_be64 (e);
  return qcow2_classify_subcluster (c->g, *l2_entry, bitmap, sc);
}

static uint64_t
host_of (const struct qcow2_header *h, uint64_t l2_entry, uint64_t pos)
{
  return qcow2_l2_host_offset (l2_entry) + (pos & (h->cluster_size - 1));
}

/* Build the run starting at OFFSET within one L2 table, ending no later
 * than LIMIT.  Called with img->lock held.
 */
static int
run_in_table (const struct l2_cursor *c, uint64_t offset, uint64_t limit,
              struct qcow2_run *run, struct qcx_err *err)
{
  const struct qcow2_header *h = c->h;
  uint64_t l2_entry, next;
  enum qcow2_subcluster_type t = classify_at (c, offset, &l2_entry);
  bool has_host = qcow2_subcluster_has_host (t);

  switch (t) {
  case QCOW2_SC_INVALID:
    return qcx_error (err, EIO, "invalid L2 entry 0x%016" PRIx64 " for guest "
                      "offset 0x%" PRIx64, l2_entry, offset);
  case QCOW2_SC_COMPRESSED:
    next = (offset | (h->cluster_size - 1)) + 1;
    run->type = t;
    run->length = (next < limit ? next : limit) - offset;
    run->offset_in_cluster = offset & (h->cluster_size - 1);
    qcow2_decode_compressed (c->g, l2_entry, &run->compressed);
    return 0;
  default:
    break;
  }

  run->type = t;
  run->host_offset = has_host ? host_of (h, l2_entry, offset) : 0;
  /* Extend subcluster by subcluster while the type stays the same and
   * the host bytes stay contiguous.
   */
  next = (offset | (h->subcluster_size - 1)) + 1;
  while (next < limit) {
    uint64_t e;
    if (classify_at (c, next, &e) != t)
      break;
    if (has_host && host_of (h, e, next) != run->host_offset + (next - offset))
      break;
    next += h->subcluster_size;
  }
  run->length = (next < limit ? next : limit) - offset;
  return 0;
}

int
qcow2_map_run (struct qcow2_image *img, uint64_t offset, uint64_t max_len,
               struct qcow2_run *run, struct qcx_err *err)
{
  const struct qcow2_header *h = &img->header;
  unsigned table_shift = h->l2_bits + h->cluster_bits;
  uint64_t l1_index = offset >> table_shift;
  uint64_t table_end = (l1_index + 1) << table_shift;
  uint64_t limit;
  struct l2_cursor c = { h, &img->geom, NULL, l1_index << table_shift };
  int r;

  if (offset >= h->size || max_len == 0)
    return qcx_error (err, EINVAL, "mapping request 0x%" PRIx64 "+%" PRIu64
                      " outside the disk", offset, max_len);
  if (max_len > h->size - offset)
    max_len = h->size - offset;
  limit = offset + max_len < table_end ? offset + max_len : table_end;

  pthread_mutex_lock (&img->lock);
  r = get_l2_table (img, l1_index, &c.table, err);
  if (r == 0 && c.table == NULL) {
    run->type = QCOW2_SC_UNALLOCATED_PLAIN;
    run->host_offset = 0;
    run->length = limit - offset;
  }
  else if (r == 0)
    r = run_in_table (&c, offset, limit, run, err);
  pthread_mutex_unlock (&img->lock);
  return r;
}

/* The write side: loading and storing single L2 entries. */

static int
remember_l1_change (struct qcow2_image *img, uint64_t l1_index,
                    struct qcx_err *err)
{
  if (img->nr_l1_dirty == img->l1_dirty_cap) {
    size_t cap = img->l1_dirty_cap ? img->l1_dirty_cap * 2 : 16;
    uint32_t *p = realloc (img->l1_dirty, cap * sizeof *p);
    if (p == NULL)
      return qcx_error (err, errno, "realloc: %s", qcx_strerror (errno));
    img->l1_dirty = p;
    img->l1_dirty_cap = cap;
  }
  img->l1_dirty[img->nr_l1_dirty++] = l1_index;
  return 0;
}

/* A new, empty L2 table for L1_INDEX.  The L1 entry changes in memory
 * now and on disk only after the table itself (flush.c).
 */
static int
create_l2_table (struct qcow2_image *img, uint64_t l1_index,
                 struct qcx_err *err)
{
  uint64_t offset;

  if (qcow2_alloc_clusters (img, 1, &offset, NULL, err) == -1 ||
      tablecache_new (&img->l2_tables, offset, err) == NULL ||
      remember_l1_change (img, l1_index, err) == -1)
    return -1;
  img->l1_table[l1_index] = offset | QCOW2_OFLAG_COPIED;
  return 0;
}

int
qcow2_l2_load (struct qcow2_image *img, uint64_t offset, bool create,
               struct qcow2_l2_slot *slot, uint64_t *l2_entry,
               uint64_t *bitmap, struct qcx_err *err)
{
  const struct qcow2_header *h = &img->header;
  uint64_t cluster = offset >> h->cluster_bits;
  const uint8_t *table, *e;

  slot->l1_index = cluster >> h->l2_bits;
  slot->index = cluster & (h->l2_entries - 1);
  slot->l2_offset = 0;
  *l2_entry = *bitmap = 0;
  if (slot->l1_index >= h->l1_size)
    return qcx_error (err, EIO, "guest offset 0x%" PRIx64 " is beyond the "
                      "L1 table", offset);
  if (get_l2_table (img, slot->l1_index, &table, err) == -1)
    return -1;
  if (table == NULL) {
    if (!create)
      return 0;
    if (create_l2_table (img, slot->l1_index, err) == -1 ||
        get_l2_table (img, slot->l1_index, &table, err) == -1)
      return -1;
  }
  slot->l2_offset = img->l1_table[slot->l1_index] & QCOW2_L1E_OFFSET_MASK;
  e = table + slot->index * h->l2_entry_size;
  *l2_entry = load_be64 (e);
  if (h->extended_l2)
    *bitmap = load_be64 (e + 8);
  return 0;
}

int
qcow2_l2_store (struct qcow2_image *img, const struct qcow2_l2_slot *slot,
                uint64_t l2_entry, uint64_t bitmap, struct qcx_err *err)
{
  const struct qcow2_header *h = &img->header;
  uint8_t *table, *e;

  table = tablecache_get_dirty (&img->l2_tables, &img->io, slot->l2_offset,
                                err);
  if (table == NULL)
    return -1;
  e = table + slot->index * h->l2_entry_size;
  store_be64 (e, l2_entry);
  if (h->extended_l2)
    store_be64 (e + 8, bitmap);
  return 0;
}
