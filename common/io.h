/* qcow2x common library: the byte store under an image.
 *
 * An image reads and writes its file through a `struct qcx_io`, so that
 * the format code never calls pread(2) directly and a fuzzer or a unit
 * test can substitute an in-memory file.  Backends: a file descriptor
 * (qcx_io_open_file), a caller-owned read-only buffer
 * (qcx_io_open_memory) and a growable private buffer
 * (qcx_io_open_memory_rw).
 *
 * Strictness: qcx_io_pread() fails with EIO if any byte of the range
 * lies beyond the end of the file.  QEMU reads such bytes as zeros; we
 * treat metadata or data that points past EOF as corruption
 * (design.md §4).
 *
 * Fault injection (for tests of the error paths): qcx_io_inject_fault()
 * makes the Nth following call of one operation fail with a chosen
 * errno, once or from then on.
 *
 * Thread safety: with the file backend, pread and pwrite may be called
 * from many threads at once; the size is changed only by
 * qcx_io_truncate(), which the owner calls under its metadata lock, and
 * readers load it atomically.  The memory backends are for
 * single-threaded use (fuzzers, unit tests).  Fault injection is set up
 * before use.
 */
#ifndef QCX_IO_H
#define QCX_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "byteorder.h"
#include "error.h"

enum qcx_io_op {
  QCX_IO_PWRITE,
  QCX_IO_SYNC,
  QCX_IO_TRUNCATE,
  QCX_IO_NR_OPS,
};

struct qcx_io_fault {
  uint64_t countdown;           /* calls left before the failure; 0: off */
  int errnum;
  bool persistent;              /* keep failing once triggered */
  bool triggered;
};

struct qcx_io {
  int fd;                       /* -1 for the memory backends */
  const uint8_t *mem;           /* memory backends */
  uint8_t *mem_rw;              /* writable memory backend (owned) */
  uint64_t mem_cap;
  uint64_t mem_max;             /* writable memory: ENOSPC past this */
  uint64_t size;                /* bytes in the file: use qcx_io_size() */
  bool readonly;
  int sync_errno;               /* a failed sync's errno (qcx_io_sync) */
  struct qcx_io_fault faults[QCX_IO_NR_OPS];
};

/* Open PATH.  Returns 0 and fills *io, or -1 and *err. */
int qcx_io_open_file (struct qcx_io *io, const char *path, bool readonly,
                      struct qcx_err *err);

/* Wrap LEN bytes at MEM (read-only; the caller keeps ownership). */
void qcx_io_open_memory (struct qcx_io *io, const void *mem, uint64_t len);

/* A private, writable copy of LEN bytes at INITIAL, growing up to MAX
 * bytes (then ENOSPC).
 */
int qcx_io_open_memory_rw (struct qcx_io *io, const void *initial,
                           uint64_t len, uint64_t max, struct qcx_err *err);

void qcx_io_close (struct qcx_io *io);

/* Make the NTH (1-based) following call of OP fail with ERRNUM; with
 * PERSISTENT, every call after it too.  NTH 0 turns injection off.
 */
void qcx_io_inject_fault (struct qcx_io *io, enum qcx_io_op op, uint64_t nth,
                          int errnum, bool persistent);

/* Read exactly COUNT bytes at OFFSET.  WHAT names the structure being
 * read for the error message ("L2 table", "data cluster", ...).
 */
int qcx_io_pread (const struct qcx_io *io, void *buf, size_t count,
                  uint64_t offset, const char *what, struct qcx_err *err);

static inline uint64_t
qcx_io_size (const struct qcx_io *io)
{
  return __atomic_load_n (&io->size, __ATOMIC_ACQUIRE);
}

/* True if [offset, offset+len) lies inside the file. */
static inline bool
qcx_io_contains (const struct qcx_io *io, uint64_t offset, uint64_t len)
{
  uint64_t size = qcx_io_size (io);
  return offset <= size && len <= size - offset;
}

/* Write exactly COUNT bytes at OFFSET (the file grows as needed). */
int qcx_io_pwrite (struct qcx_io *io, const void *buf, size_t count,
                   uint64_t offset, const char *what, struct qcx_err *err);

/* Write VALUE as one big-endian 64-bit field at OFFSET (header fields,
 * L1 and refcount table entries).  Inline, so that each write is still
 * a call of qcx_io_pwrite from its caller (fuzz_write wraps that call
 * to check where metadata writes land).
 */
static inline int
qcx_io_pwrite_be64 (struct qcx_io *io, uint64_t value, uint64_t offset,
                    const char *what, struct qcx_err *err)
{
  uint8_t be[8];

  store_be64 (be, value);
  return qcx_io_pwrite (io, be, 8, offset, what, err);
}

/* Write COUNT zero bytes at OFFSET. */
int qcx_io_pwrite_zeroes (struct qcx_io *io, uint64_t count, uint64_t offset,
                          const char *what, struct qcx_err *err);

/* Make everything written so far durable (fdatasync).  Once a sync has
 * failed, every later one fails too (with the same errno): the data the
 * failed one lost cannot be made durable by trying again.
 */
int qcx_io_sync (struct qcx_io *io, struct qcx_err *err);

/* Set the file size (grow or shrink). */
int qcx_io_truncate (struct qcx_io *io, uint64_t size, struct qcx_err *err);

/* Give the space of [offset, offset+len) back to the file system; the
 * range reads as zeros afterwards.  Best effort: a file system without
 * hole punching keeps the bytes, which is harmless for freed clusters.
 */
void qcx_io_punch_hole (struct qcx_io *io, uint64_t offset, uint64_t len);

#endif /* QCX_IO_H */
