/* qcow2x common library: a bounded LRU cache of L2 tables (see l2cache.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "l2cache.h"

struct l2cache_slot {
  uint64_t host_offset;
  struct l2cache_slot *hash_next;
  struct l2cache_slot *lru_prev, *lru_next;
  uint8_t table[];
};

static size_t
bucket_of (const struct l2cache *c, uint64_t host_offset)
{
  /* Offsets are cluster aligned: mix the high bits down. */
  uint64_t h = host_offset * 0x9e3779b97f4a7c15ULL;
  return (h >> 32) & (c->nr_buckets - 1);
}

int
l2cache_init (struct l2cache *c, size_t table_size, uint64_t capacity_bytes,
              struct qcx_err *err)
{
  memset (c, 0, sizeof *c);
  c->table_size = table_size;
  c->capacity = capacity_bytes / table_size;
  if (c->capacity == 0)
    c->capacity = 1;
  c->nr_buckets = 16;
  while (c->nr_buckets < c->capacity && c->nr_buckets < (1u << 22))
    c->nr_buckets <<= 1;
  c->buckets = calloc (c->nr_buckets, sizeof *c->buckets);
  if (c->buckets == NULL)
    return qcx_error (err, errno, "calloc: %s", strerror (errno));
  return 0;
}

void
l2cache_free (struct l2cache *c)
{
  struct l2cache_slot *s = c->lru_head;

  while (s) {
    struct l2cache_slot *next = s->lru_next;
    free (s);
    s = next;
  }
  free (c->buckets);
  memset (c, 0, sizeof *c);
}

static void
lru_unlink (struct l2cache *c, struct l2cache_slot *s)
{
  if (s->lru_prev) s->lru_prev->lru_next = s->lru_next;
  else c->lru_head = s->lru_next;
  if (s->lru_next) s->lru_next->lru_prev = s->lru_prev;
  else c->lru_tail = s->lru_prev;
  s->lru_prev = s->lru_next = NULL;
}

static void
lru_push_front (struct l2cache *c, struct l2cache_slot *s)
{
  s->lru_prev = NULL;
  s->lru_next = c->lru_head;
  if (c->lru_head) c->lru_head->lru_prev = s;
  c->lru_head = s;
  if (c->lru_tail == NULL) c->lru_tail = s;
}

static void
hash_remove (struct l2cache *c, struct l2cache_slot *s)
{
  struct l2cache_slot **pp = &c->buckets[bucket_of (c, s->host_offset)];

  while (*pp != s)
    pp = &(*pp)->hash_next;
  *pp = s->hash_next;
}

static struct l2cache_slot *
lookup (struct l2cache *c, uint64_t host_offset)
{
  struct l2cache_slot *s = c->buckets[bucket_of (c, host_offset)];

  while (s && s->host_offset != host_offset)
    s = s->hash_next;
  return s;
}

/* A slot for a new table: a fresh one while under capacity, else the
 * least recently used one, unlinked.
 */
static struct l2cache_slot *
take_slot (struct l2cache *c, struct qcx_err *err)
{
  struct l2cache_slot *s;

  if (c->nr < c->capacity) {
    s = malloc (sizeof *s + c->table_size);
    if (s == NULL) {
      qcx_error (err, errno, "malloc: %s", strerror (errno));
      return NULL;
    }
    c->nr++;
    return s;
  }
  s = c->lru_tail;
  lru_unlink (c, s);
  hash_remove (c, s);
  return s;
}

const uint8_t *
l2cache_get (struct l2cache *c, const struct qcx_io *io, uint64_t host_offset,
             struct qcx_err *err)
{
  struct l2cache_slot *s = lookup (c, host_offset);
  size_t b;

  if (s) {
    c->hits++;
    if (c->lru_head != s) {
      lru_unlink (c, s);
      lru_push_front (c, s);
    }
    return s->table;
  }
  c->misses++;
  s = take_slot (c, err);
  if (s == NULL)
    return NULL;
  if (qcx_io_pread (io, s->table, c->table_size, host_offset, "L2 table",
                    err) == -1) {
    free (s);
    c->nr--;
    return NULL;
  }
  s->host_offset = host_offset;
  b = bucket_of (c, host_offset);
  s->hash_next = c->buckets[b];
  c->buckets[b] = s;
  lru_push_front (c, s);
  return s->table;
}
