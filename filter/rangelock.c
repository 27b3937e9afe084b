/* nbdkit-qcow2xchain-filter: byte-range locks (see rangelock.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "rangelock.h"

void
rangelock_init (struct rangelock *rl)
{
  pthread_mutex_init (&rl->lock, NULL);
  pthread_cond_init (&rl->released, NULL);
  rl->held = NULL;
  rl->nr = rl->cap = 0;
}

void
rangelock_destroy (struct rangelock *rl)
{
  pthread_cond_destroy (&rl->released);
  pthread_mutex_destroy (&rl->lock);
  free (rl->held);
}

static bool
overlaps_held (const struct rangelock *rl, uint64_t start, uint64_t end)
{
  for (size_t i = 0; i < rl->nr; i++)
    if (start < rl->held[i].end && rl->held[i].start < end)
      return true;
  return false;
}

int
rangelock_acquire (struct rangelock *rl, uint64_t start, uint64_t end)
{
  int r = 0;

  pthread_mutex_lock (&rl->lock);
  while (overlaps_held (rl, start, end))
    pthread_cond_wait (&rl->released, &rl->lock);
  if (rl->nr == rl->cap) {
    size_t cap = rl->cap ? rl->cap * 2 : 16;
    struct rangelock_range *p = realloc (rl->held, cap * sizeof *p);
    if (p == NULL) {
      r = -1;
      errno = ENOMEM;
      goto out;
    }
    rl->held = p;
    rl->cap = cap;
  }
  rl->held[rl->nr++] = (struct rangelock_range) { start, end };
 out:
  pthread_mutex_unlock (&rl->lock);
  return r;
}

void
rangelock_release (struct rangelock *rl, uint64_t start, uint64_t end)
{
  pthread_mutex_lock (&rl->lock);
  for (size_t i = 0; i < rl->nr; i++)
    if (rl->held[i].start == start && rl->held[i].end == end) {
      rl->held[i] = rl->held[--rl->nr];
      break;
    }
  pthread_cond_broadcast (&rl->released);
  pthread_mutex_unlock (&rl->lock);
}
