/* qcow2x common library: a bounded LRU cache of L2 tables.
 *
 * Tables are keyed by their host offset and kept as the raw
 * big-endian cluster read from the file; callers decode the entries
 * they need.  The cache holds at most `capacity` tables; memory is
 * allocated as tables are first used, so a small image never pays for
 * the bound.
 *
 * Locking: none inside.  The owner (struct qcow2_image) calls every
 * function with its metadata lock held, and a returned table pointer
 * is valid only until the lock is released or the cache is next
 * called.
 */
#ifndef QCX_L2CACHE_H
#define QCX_L2CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "io.h"

struct l2cache_slot;

struct l2cache {
  size_t table_size;            /* bytes per table (= cluster size) */
  size_t capacity;              /* max tables */
  size_t nr;                    /* tables held */
  struct l2cache_slot **buckets;
  size_t nr_buckets;            /* power of two */
  struct l2cache_slot *lru_head;   /* most recently used */
  struct l2cache_slot *lru_tail;   /* least recently used */
  uint64_t hits, misses;
};

/* CAPACITY_BYTES is rounded down to whole tables, with at least one. */
int l2cache_init (struct l2cache *c, size_t table_size,
                  uint64_t capacity_bytes, struct qcx_err *err);
void l2cache_free (struct l2cache *c);

/* Return the table at HOST_OFFSET, reading it from IO on a miss and
 * evicting the least recently used table if the cache is full.
 * Returns NULL and sets *err on I/O error.
 */
const uint8_t *l2cache_get (struct l2cache *c, const struct qcx_io *io,
                            uint64_t host_offset, struct qcx_err *err);

#endif /* QCX_L2CACHE_H */
