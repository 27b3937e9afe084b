/* qcow2x common library: cache of metadata tables (see tablecache.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tablecache.h"

struct tablecache_slot {
  uint64_t host_offset;
  bool dirty;
  struct tablecache_slot *hash_next;
  struct tablecache_slot *lru_prev, *lru_next;
  uint8_t table[];
};

static size_t
bucket_of (const struct tablecache *c, uint64_t host_offset)
{
  /* Offsets are cluster aligned: mix the high bits down. */
  uint64_t h = host_offset * 0x9e3779b97f4a7c15ULL;
  return (h >> 32) & (c->nr_buckets - 1);
}

int
tablecache_init (struct tablecache *c, const char *what, size_t table_size,
                 uint64_t capacity_bytes, tablecache_make_clean_fn make_clean,
                 void *owner, struct qcx_err *err)
{
  memset (c, 0, sizeof *c);
  c->what = what;
  c->table_size = table_size;
  c->capacity = capacity_bytes / table_size;
  /* Two, so that a caller holding one table can load another. */
  if (c->capacity < 2)
    c->capacity = 2;
  c->make_clean = make_clean;
  c->owner = owner;
  c->nr_buckets = 16;
  while (c->nr_buckets < c->capacity && c->nr_buckets < (1u << 22))
    c->nr_buckets <<= 1;
  c->buckets = calloc (c->nr_buckets, sizeof *c->buckets);
  if (c->buckets == NULL)
    return qcx_error (err, errno, "calloc: %s", qcx_strerror (errno));
  return 0;
}

void
tablecache_free (struct tablecache *c)
{
  struct tablecache_slot *s = c->lru_head;

  while (s) {
    struct tablecache_slot *next = s->lru_next;
    free (s);
    s = next;
  }
  free (c->buckets);
  memset (c, 0, sizeof *c);
}

static void
lru_unlink (struct tablecache *c, struct tablecache_slot *s)
{
  if (s->lru_prev) s->lru_prev->lru_next = s->lru_next;
  else c->lru_head = s->lru_next;
  if (s->lru_next) s->lru_next->lru_prev = s->lru_prev;
  else c->lru_tail = s->lru_prev;
  s->lru_prev = s->lru_next = NULL;
}

static void
lru_push_front (struct tablecache *c, struct tablecache_slot *s)
{
  s->lru_prev = NULL;
  s->lru_next = c->lru_head;
  if (c->lru_head) c->lru_head->lru_prev = s;
  c->lru_head = s;
  if (c->lru_tail == NULL) c->lru_tail = s;
}

static void
hash_insert (struct tablecache *c, struct tablecache_slot *s)
{
  size_t b = bucket_of (c, s->host_offset);

  s->hash_next = c->buckets[b];
  c->buckets[b] = s;
}

static void
hash_remove (struct tablecache *c, struct tablecache_slot *s)
{
  struct tablecache_slot **pp = &c->buckets[bucket_of (c, s->host_offset)];

  while (*pp != s)
    pp = &(*pp)->hash_next;
  *pp = s->hash_next;
}

static struct tablecache_slot *
lookup (struct tablecache *c, uint64_t host_offset)
{
  struct tablecache_slot *s = c->buckets[bucket_of (c, host_offset)];

  while (s && s->host_offset != host_offset)
    s = s->hash_next;
  return s;
}

static void
set_dirty (struct tablecache *c, struct tablecache_slot *s, bool dirty)
{
  if (s->dirty != dirty)
    c->nr_dirty += dirty ? 1 : -1;
  s->dirty = dirty;
}

/* A slot for a new table: a fresh one while under capacity, else the
 * least recently used one, made clean first.
 */
static struct tablecache_slot *
take_slot (struct tablecache *c, struct qcx_err *err)
{
  struct tablecache_slot *s;

  if (c->nr < c->capacity) {
    s = malloc (sizeof *s + c->table_size);
    if (s == NULL) {
      qcx_error (err, errno, "malloc: %s", qcx_strerror (errno));
      return NULL;
    }
    c->nr++;
    return s;
  }
  if (c->lru_tail->dirty) {
    if (c->make_clean == NULL ||
        c->make_clean (c->owner, c, err) == -1)
      return NULL;
    if (c->lru_tail->dirty) {
      qcx_error (err, EIO, "%s cache: evicted table is still dirty",
                 c->what);
      return NULL;
    }
  }
  s = c->lru_tail;
  lru_unlink (c, s);
  hash_remove (c, s);
  return s;
}

static struct tablecache_slot *
get_slot (struct tablecache *c, const struct qcx_io *io, uint64_t host_offset,
          bool read, struct qcx_err *err)
{
  struct tablecache_slot *s = lookup (c, host_offset);

  if (s) {
    c->hits++;
    if (c->lru_head != s) {
      lru_unlink (c, s);
      lru_push_front (c, s);
    }
    if (!read)
      memset (s->table, 0, c->table_size);
    return s;
  }
  c->misses++;
  s = take_slot (c, err);
  if (s == NULL)
    return NULL;
  if (read) {
    if (qcx_io_pread (io, s->table, c->table_size, host_offset, c->what,
                      err) == -1) {
      free (s);
      c->nr--;
      return NULL;
    }
  }
  else
    memset (s->table, 0, c->table_size);
  s->host_offset = host_offset;
  s->dirty = false;
  hash_insert (c, s);
  lru_push_front (c, s);
  return s;
}

const uint8_t *
tablecache_get (struct tablecache *c, const struct qcx_io *io,
                uint64_t host_offset, struct qcx_err *err)
{
  struct tablecache_slot *s = get_slot (c, io, host_offset, true, err);
  return s ? s->table : NULL;
}

uint8_t *
tablecache_get_dirty (struct tablecache *c, const struct qcx_io *io,
                      uint64_t host_offset, struct qcx_err *err)
{
  struct tablecache_slot *s = get_slot (c, io, host_offset, true, err);

  if (s == NULL)
    return NULL;
  set_dirty (c, s, true);
  return s->table;
}

uint8_t *
tablecache_new (struct tablecache *c, uint64_t host_offset,
                struct qcx_err *err)
{
  struct tablecache_slot *s = get_slot (c, NULL, host_offset, false, err);

  if (s == NULL)
    return NULL;
  set_dirty (c, s, true);
  return s->table;
}

int
tablecache_write_dirty (struct tablecache *c, struct qcx_io *io,
                        struct qcx_err *err)
{
  for (struct tablecache_slot *s = c->lru_head; s && c->nr_dirty > 0;
       s = s->lru_next) {
    if (!s->dirty)
      continue;
    if (qcx_io_pwrite (io, s->table, c->table_size, s->host_offset, c->what,
                       err) == -1)
      return -1;
    set_dirty (c, s, false);
  }
  return 0;
}

void
tablecache_drop (struct tablecache *c, uint64_t host_offset)
{
  struct tablecache_slot *s = lookup (c, host_offset);

  if (s == NULL)
    return;
  set_dirty (c, s, false);
  lru_unlink (c, s);
  hash_remove (c, s);
  free (s);
  c->nr--;
}
