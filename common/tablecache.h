/* qcow2x common library: a bounded LRU cache of cluster-sized metadata
 * tables (L2 tables and refcount blocks), with write-back.
 *
 * Tables are keyed by host offset and kept as the raw big-endian
 * cluster; callers decode and encode the entries they touch.  A
 * modified table is marked dirty and written back by
 * tablecache_write_dirty() when the owner decides the order allows it
 * (see flush.c).  At most `capacity` tables are held; memory is
 * allocated on first use.
 *
 * Eviction of a dirty table calls the owner's `make_clean` callback,
 * which must write it (and whatever has to reach the disk before it)
 * so that the slot can be reused.
 *
 * Locking: none inside.  The owner calls every function with its
 * metadata lock held.  A returned table pointer is valid until the
 * next call on the same cache.
 */
#ifndef QCX_TABLECACHE_H
#define QCX_TABLECACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "io.h"

struct tablecache_slot;
struct tablecache;

typedef int (*tablecache_make_clean_fn) (void *owner, struct tablecache *c,
                                         struct qcx_err *err);

struct tablecache {
  const char *what;             /* "L2 table", "refcount block" */
  size_t table_size;            /* bytes per table (= cluster size) */
  size_t capacity;              /* max tables */
  size_t nr;                    /* tables held */
  size_t nr_dirty;
  struct tablecache_slot **buckets;
  size_t nr_buckets;            /* power of two */
  struct tablecache_slot *lru_head;   /* most recently used */
  struct tablecache_slot *lru_tail;   /* least recently used */
  tablecache_make_clean_fn make_clean;
  void *owner;
  uint64_t hits, misses;
};

/* CAPACITY_BYTES is rounded down to whole tables, with at least two. */
int tablecache_init (struct tablecache *c, const char *what,
                     size_t table_size, uint64_t capacity_bytes,
                     tablecache_make_clean_fn make_clean, void *owner,
                     struct qcx_err *err);
void tablecache_free (struct tablecache *c);

/* The table at HOST_OFFSET, read from IO on a miss. */
const uint8_t *tablecache_get (struct tablecache *c, const struct qcx_io *io,
                               uint64_t host_offset, struct qcx_err *err);

/* The same, for modification: the table is marked dirty. */
uint8_t *tablecache_get_dirty (struct tablecache *c, const struct qcx_io *io,
                               uint64_t host_offset, struct qcx_err *err);

/* A new all-zero table at HOST_OFFSET (not read), marked dirty. */
uint8_t *tablecache_new (struct tablecache *c, uint64_t host_offset,
                         struct qcx_err *err);

/* Write every dirty table to IO (no sync) and mark it clean. */
int tablecache_write_dirty (struct tablecache *c, struct qcx_io *io,
                            struct qcx_err *err);

/* Forget the table at HOST_OFFSET, dirty or not (it was freed). */
void tablecache_drop (struct tablecache *c, uint64_t host_offset);

#endif /* QCX_TABLECACHE_H */
