/* nbdkit-qcow2xchain-filter: byte-range locks.
 *
 * Serialises requests whose (widened) byte ranges overlap, so that a
 * read-modify-write of a copy-on-write unit never races another write
 * to the same unit and loses it (design.md §3).  Requests on disjoint
 * ranges proceed in parallel.  Thread-safe; a thread must not acquire
 * a second range while holding one.
 */
#ifndef QCX_RANGELOCK_H
#define QCX_RANGELOCK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct rangelock_range {
  uint64_t start, end;
};

struct rangelock {
  pthread_mutex_t lock;
  pthread_cond_t released;
  struct rangelock_range *held;
  size_t nr, cap;
};

void rangelock_init (struct rangelock *rl);
void rangelock_destroy (struct rangelock *rl);
/* Returns 0, or -1 with errno (ENOMEM). */
int rangelock_acquire (struct rangelock *rl, uint64_t start, uint64_t end);
void rangelock_release (struct rangelock *rl, uint64_t start, uint64_t end);

#endif /* QCX_RANGELOCK_H */
