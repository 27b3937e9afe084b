/* qcow2x common library: the byte store under an image.
 *
 * An image reads its file through a `struct qcx_io`, so that the
 * format code never calls pread(2) directly and a fuzzer or a unit
 * test can substitute an in-memory file.  Two backends exist: a file
 * descriptor (qcx_io_open_file) and a caller-owned memory buffer
 * (qcx_io_open_memory).
 *
 * Strictness: qcx_io_pread() fails with EIO if any byte of the range
 * lies beyond the end of the file.  QEMU reads such bytes as zeros; we
 * treat metadata or data that points past EOF as corruption
 * (design.md §4).
 *
 * Thread safety: pread and pwrite may be called from many threads at
 * once.  The size is sampled at open and changed only by
 * qcx_io_truncate(), which the owner calls under its metadata lock;
 * readers load it atomically.
 */
#ifndef QCX_IO_H
#define QCX_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct qcx_io {
  int fd;                   /* -1 for the memory backend */
  const uint8_t *mem;       /* memory backend only (not owned) */
  uint64_t size;            /* bytes in the file: use qcx_io_size() */
  bool readonly;
};

/* Open PATH.  Returns 0 and fills *io, or -1 and *err. */
int qcx_io_open_file (struct qcx_io *io, const char *path, bool readonly,
                      struct qcx_err *err);

/* Wrap LEN bytes at MEM (read-only; the caller keeps ownership). */
void qcx_io_open_memory (struct qcx_io *io, const void *mem, uint64_t len);

void qcx_io_close (struct qcx_io *io);

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

/* Write COUNT zero bytes at OFFSET. */
int qcx_io_pwrite_zeroes (struct qcx_io *io, uint64_t count, uint64_t offset,
                          const char *what, struct qcx_err *err);

/* Make everything written so far durable (fdatasync). */
int qcx_io_sync (struct qcx_io *io, struct qcx_err *err);

/* Set the file size (grow or shrink). */
int qcx_io_truncate (struct qcx_io *io, uint64_t size, struct qcx_err *err);

/* Give the space of [offset, offset+len) back to the file system; the
 * range reads as zeros afterwards.  Best effort: a file system without
 * hole punching keeps the bytes, which is harmless for freed clusters.
 */
void qcx_io_punch_hole (struct qcx_io *io, uint64_t offset, uint64_t len);

#endif /* QCX_IO_H */
