/* qcow2x common library: reference counts (see refcount.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "allocator.h"
#include "byteorder.h"
#include "image.h"
#include "refcount.h"

#define REFBLOCK_CACHE_BYTES (4u << 20)

uint64_t
qcow2_refblock_get (const uint8_t *block, uint64_t index, unsigned order)
{
  switch (order) {
  case 0: case 1: case 2: {
    /* Sub-byte widths: bit 0 is the least significant bit
     * ("Refcount block entry").
     */
    unsigned bits = 1u << order, per_byte = 8 / bits;
    uint8_t b = block[index / per_byte];
    return (b >> ((index % per_byte) * bits)) & ((1u << bits) - 1);
  }
  case 3: return block[index];
  case 4: return load_be16 (block + 2 * index);
  case 5: return load_be32 (block + 4 * index);
  default: return load_be64 (block + 8 * index);
  }
}

static void
refblock_set (uint8_t *block, uint64_t index, unsigned order, uint64_t v)
{
  switch (order) {
  case 0: case 1: case 2: {
    unsigned bits = 1u << order, per_byte = 8 / bits;
    unsigned shift = (index % per_byte) * bits;
    uint8_t mask = ((1u << bits) - 1) << shift;
    uint8_t *b = &block[index / per_byte];
    *b = (*b & ~mask) | ((v << shift) & mask);
    break;
  }
  case 3: block[index] = v; break;
  case 4: store_be16 (block + 2 * index, v); break;
  case 5: store_be32 (block + 4 * index, v); break;
  default: store_be64 (block + 8 * index, v); break;
  }
}

/* Evicting a dirty refcount block: any block may be written at any
 * time, because decrements are applied only after the references they
 * drop are gone from the disk (flush.c); write them all.
 */
static int
refblocks_make_clean (void *owner, struct tablecache *c, struct qcx_err *err)
{
  struct qcow2_image *img = owner;
  return tablecache_write_dirty (c, &img->io, err);
}

int
qcow2_refcounts_load (struct qcow2_image *img, struct qcx_err *err)
{
  struct qcow2_refcounts *rc = &img->refcounts;
  const struct qcow2_header *h = &img->header;
  uint64_t bytes = (uint64_t) h->refcount_table_clusters * h->cluster_size;
  uint64_t cache = REFBLOCK_CACHE_BYTES;

  rc->order = h->refcount_order;
  rc->block_entries = (h->cluster_size * 8) >> rc->order;
  rc->max = rc->order == 6 ? UINT64_MAX : (1ULL << (1u << rc->order)) - 1;
  rc->table_offset = h->refcount_table_offset;
  rc->table_clusters = h->refcount_table_clusters;
  rc->table_entries = bytes / 8;
  /* bytes is bounded by QCOW2_MAX_REFTABLE_BYTES (header.c). */
  rc->table = malloc (bytes);
  if (rc->table == NULL)
    return qcx_error (err, errno, "malloc refcount table: %s",
                      qcx_strerror (errno));
  if (qcx_io_pread (&img->io, rc->table, bytes, rc->table_offset,
                    "refcount table", err) == -1)
    return -1;
  for (uint64_t i = 0; i < rc->table_entries; i++) {
    rc->table[i] = load_be64 (&rc->table[i]);
    if (rc->table[i] & (h->cluster_size - 1))
      return qcx_error (err, EINVAL, "refcount table entry %" PRIu64
                        " (0x%" PRIx64 ") is not aligned to a cluster "
                        "boundary", i, rc->table[i]);
  }
  if (cache < 8 * h->cluster_size)
    cache = 8 * h->cluster_size;
  return tablecache_init (&rc->blocks, "refcount block", h->cluster_size,
                          cache, refblocks_make_clean, img, err);
}

void
qcow2_refcounts_free (struct qcow2_image *img)
{
  free (img->refcounts.table);
  img->refcounts.table = NULL;
  if (img->refcounts.blocks.buckets)
    tablecache_free (&img->refcounts.blocks);
}

int
qcow2_refcount_get (struct qcow2_image *img, uint64_t cluster,
                    uint64_t *value, struct qcx_err *err)
{
  struct qcow2_refcounts *rc = &img->refcounts;
  uint64_t ti = cluster / rc->block_entries;
  const uint8_t *block;

  *value = 0;
  if (ti >= rc->table_entries || rc->table[ti] == 0)
    return 0;
  block = tablecache_get (&rc->blocks, &img->io, rc->table[ti], err);
  if (block == NULL)
    return -1;
  *value = qcow2_refblock_get (block, cluster % rc->block_entries, rc->order);
  return 0;
}

/* Make the dirty refcount blocks durable, then point table entry TI at
 * BLOCK_OFFSET on disk.  The block must be on disk before the table
 * references it, or a crash would leave a table entry to garbage.
 */
static int
publish_table_entry (struct qcow2_image *img, uint64_t ti,
                     uint64_t block_offset, struct qcx_err *err)
{
  struct qcow2_refcounts *rc = &img->refcounts;

  if (tablecache_write_dirty (&rc->blocks, &img->io, err) == -1 ||
      qcx_io_sync (&img->io, err) == -1)
    return -1;
  /* Memory follows the disk: if the write fails, the table still says
   * "no block" and the block's cluster is merely leaked.
   */
  if (qcx_io_pwrite_be64 (&img->io, block_offset, rc->table_offset + ti * 8,
                          "refcount table", err) == -1)
    return -1;
  rc->table[ti] = block_offset;
  return 0;
}

static int grow_table (struct qcow2_image *img, uint64_t needed_ti,
                       struct qcx_err *err);

/* Create the refcount block for table index TI in a free cluster.  If
 * that cluster falls in the range the new block covers, the block
 * counts itself; otherwise its refcount goes in another block.
 */
static int
create_block (struct qcow2_image *img, uint64_t ti, struct qcx_err *err)
{
  struct qcow2_refcounts *rc = &img->refcounts;
  uint64_t cs = img->header.cluster_size;
  uint64_t f;
  uint8_t *block;

  if (qcow2_allocator_take (img, 1, &f, err) == -1)
    return -1;
  if (f / rc->block_entries != ti &&
      qcow2_refcount_update (img, f, 1, NULL, err) == -1)
    return -1;
  /* The recursion above may have created this very block already. */
  if (rc->table[ti] != 0)
    return qcx_error (err, EIO, "refcount block %" PRIu64 " created twice",
                      ti);
  block = tablecache_new (&rc->blocks, f * cs, err);
  if (block == NULL)
    return -1;
  if (f / rc->block_entries == ti)
    refblock_set (block, f % rc->block_entries, rc->order, 1);
  return publish_table_entry (img, ti, f * cs, err);
}

int
qcow2_refcount_update (struct qcow2_image *img, uint64_t cluster,
                       int64_t delta, uint64_t *new_value,
                       struct qcx_err *err)
{
  struct qcow2_refcounts *rc = &img->refcounts;
  uint64_t ti = cluster / rc->block_entries;
  uint64_t index = cluster % rc->block_entries;
  uint64_t old, v;
  uint8_t *block;

  if (ti >= rc->table_entries && grow_table (img, ti, err) == -1)
    return -1;
  if (rc->table[ti] == 0) {
    if (delta < 0)
      return qcx_error (err, EIO, "refcount underflow for cluster 0x%"
                        PRIx64 " (no refcount block)", cluster);
    if (create_block (img, ti, err) == -1)
      return -1;
  }
  block = tablecache_get_dirty (&rc->blocks, &img->io, rc->table[ti], err);
  if (block == NULL)
    return -1;
  old = qcow2_refblock_get (block, index, rc->order);
  if (delta < 0 && old < (uint64_t) -delta)
    return qcx_error (err, EIO, "refcount underflow for host cluster 0x%"
                      PRIx64, cluster * img->header.cluster_size);
  if (delta > 0 && rc->max - old < (uint64_t) delta)
    return qcx_error (err, EIO, "refcount overflow for host cluster 0x%"
                      PRIx64 " (%u-bit refcounts)",
                      cluster * img->header.cluster_size, 1u << rc->order);
  v = old + delta;
  refblock_set (block, index, rc->order, v);
  if (new_value)
    *new_value = v;
  return 0;
}

/* Growing the table: the new table and the refcount blocks that must
 * exist to count it are placed together past the end of everything in
 * use, counted, written and synced; only then does the header switch
 * to the new table, and the old table's clusters are freed after that
 * (qcow2.txt "Host cluster management"; QEMU moves its table the same
 * way).
 */
struct grow_plan {
  uint64_t start;               /* first new cluster */
  uint64_t table_clusters;      /* the new table */
  uint64_t new_entries;
  uint64_t nr_blocks;           /* new refcount blocks after the table */
};

static bool
block_missing (const struct qcow2_refcounts *rc, uint64_t ti)
{
  return ti >= rc->table_entries || rc->table[ti] == 0;
}

static uint64_t
count_missing (const struct qcow2_refcounts *rc, uint64_t first,
               uint64_t last)
{
  uint64_t n = 0;
  for (uint64_t ti = first; ti <= last; ti++)
    n += block_missing (rc, ti);
  return n;
}

static void
plan_growth (const struct qcow2_image *img, uint64_t needed_ti,
             struct grow_plan *p)
{
  const struct qcow2_refcounts *rc = &img->refcounts;
  uint64_t per_cluster = img->header.cluster_size / 8;
  uint64_t want = rc->table_entries * 2;

  if (want < needed_ti + 1)
    want = needed_ti + 1;
  p->start = img->alloc.end;
  for (;;) {
    uint64_t last;
    p->new_entries = (want + per_cluster - 1) / per_cluster * per_cluster;
    p->table_clusters = p->new_entries / per_cluster;
    /* The blocks count themselves too: iterate to a fixed point. */
    p->nr_blocks = 0;
    for (;;) {
      uint64_t n;
      last = p->start + p->table_clusters + p->nr_blocks - 1;
      n = count_missing (rc, p->start / rc->block_entries,
                         last / rc->block_entries);
      if (n <= p->nr_blocks)
        break;
      p->nr_blocks = n;
    }
    if (last / rc->block_entries < p->new_entries)
      return;
    want = last / rc->block_entries + 1;
  }
}

static int
count_new_clusters (struct qcow2_image *img, const struct grow_plan *p,
                    uint64_t *new_table, struct qcx_err *err)
{
  struct qcow2_refcounts *rc = &img->refcounts;
  uint64_t cs = img->header.cluster_size;
  uint64_t first_ti = p->start / rc->block_entries;
  uint64_t last = p->start + p->table_clusters + p->nr_blocks - 1;
  uint64_t next_block = p->start + p->table_clusters;

  /* Assign the new blocks, zeroed, in table order. */
  for (uint64_t ti = first_ti; ti <= last / rc->block_entries; ti++) {
    if (!block_missing (rc, ti))
      continue;
    new_table[ti] = next_block * cs;
    if (tablecache_new (&rc->blocks, next_block * cs, err) == NULL)
      return -1;
    next_block++;
  }
  for (uint64_t c = p->start; c <= last; c++) {
    uint8_t *block = tablecache_get_dirty (&rc->blocks, &img->io,
                                           new_table[c / rc->block_entries],
                                           err);
    if (block == NULL)
      return -1;
    refblock_set (block, c % rc->block_entries, rc->order, 1);
  }
  return 0;
}

static int
write_new_table (struct qcow2_image *img, const struct grow_plan *p,
                 const uint64_t *new_table, struct qcx_err *err)
{
  uint64_t bytes = p->new_entries * 8;
  uint64_t *be = malloc (bytes);
  int r;

  if (be == NULL)
    return qcx_error (err, errno, "malloc: %s", qcx_strerror (errno));
  for (uint64_t i = 0; i < p->new_entries; i++)
    store_be64 (&be[i], new_table[i]);
  r = qcx_io_pwrite (&img->io, be, bytes,
                     p->start * img->header.cluster_size,
                     "refcount table", err);
  free (be);
  return r;
}

static int
switch_header_to (struct qcow2_image *img, const struct grow_plan *p,
                  struct qcx_err *err)
{
  uint8_t buf[12];

  store_be64 (buf, p->start * img->header.cluster_size);
  store_be32 (buf + 8, p->table_clusters);
  if (qcx_io_pwrite (&img->io, buf, sizeof buf, 48, "header", err) == -1 ||
      qcx_io_sync (&img->io, err) == -1)
    return -1;
  img->header.refcount_table_offset = p->start * img->header.cluster_size;
  img->header.refcount_table_clusters = p->table_clusters;
  return 0;
}

static int
grow_table (struct qcow2_image *img, uint64_t needed_ti, struct qcx_err *err)
{
  struct qcow2_refcounts *rc = &img->refcounts;
  struct grow_plan p;
  uint64_t *new_table;
  uint64_t old_offset = rc->table_offset, old_clusters = rc->table_clusters;
  uint64_t first;

  plan_growth (img, needed_ti, &p);
  if (p.new_entries * 8 > QCOW2_MAX_REFTABLE_BYTES)
    return qcx_error (err, ENOSPC, "refcount table would exceed %u MiB",
                      QCOW2_MAX_REFTABLE_BYTES >> 20);
  new_table = calloc (p.new_entries, sizeof *new_table);
  if (new_table == NULL)
    return qcx_error (err, errno, "calloc: %s", qcx_strerror (errno));
  memcpy (new_table, rc->table, rc->table_entries * sizeof *new_table);
  if (qcow2_allocator_take_at_end (img, p.table_clusters + p.nr_blocks,
                                   &first, err) == -1 ||
      (first != p.start &&
       qcx_error (err, EIO, "refcount table growth: end moved") == -1) ||
      count_new_clusters (img, &p, new_table, err) == -1 ||
      tablecache_write_dirty (&rc->blocks, &img->io, err) == -1 ||
      write_new_table (img, &p, new_table, err) == -1 ||
      qcx_io_sync (&img->io, err) == -1 ||
      switch_header_to (img, &p, err) == -1) {
    free (new_table);
    return -1;
  }
  free (rc->table);
  rc->table = new_table;
  rc->table_entries = p.new_entries;
  rc->table_offset = p.start * img->header.cluster_size;
  rc->table_clusters = p.table_clusters;
  return qcow2_allocator_free_later (img, old_offset, old_clusters, err);
}
