/* qcow2x common library: the byte store under an image (see io.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

static const char *const op_names[QCX_IO_NR_OPS] = {
  "write", "sync", "truncate",
};

int
qcx_io_open_file (struct qcx_io *io, const char *path, bool readonly,
                  struct qcx_err *err)
{
  struct stat st;

  memset (io, 0, sizeof *io);
  io->fd = open (path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (io->fd == -1)
    return qcx_error (err, errno, "open: %s: %s", path, qcx_strerror (errno));
  if (fstat (io->fd, &st) == -1) {
    int e = errno;
    close (io->fd);
    io->fd = -1;
    return qcx_error (err, e, "fstat: %s: %s", path, qcx_strerror (e));
  }
  if (!S_ISREG (st.st_mode) && !S_ISBLK (st.st_mode)) {
    close (io->fd);
    io->fd = -1;
    return qcx_error (err, EINVAL, "%s: not a regular file or block device",
                      path);
  }
  if (S_ISBLK (st.st_mode)) {
    off_t end = lseek (io->fd, 0, SEEK_END);
    if (end == -1) {
      int e = errno;
      close (io->fd);
      io->fd = -1;
      return qcx_error (err, e, "lseek: %s: %s", path, qcx_strerror (e));
    }
    io->size = end;
  }
  else
    io->size = st.st_size;
  io->readonly = readonly;
  return 0;
}

void
qcx_io_open_memory (struct qcx_io *io, const void *mem, uint64_t len)
{
  memset (io, 0, sizeof *io);
  io->fd = -1;
  io->mem = mem;
  io->size = len;
  io->readonly = true;
}

int
qcx_io_open_memory_rw (struct qcx_io *io, const void *initial, uint64_t len,
                       uint64_t max, struct qcx_err *err)
{
  memset (io, 0, sizeof *io);
  io->fd = -1;
  io->mem_cap = len ? len : 1;
  io->mem_rw = malloc (io->mem_cap);
  if (io->mem_rw == NULL)
    return qcx_error (err, ENOMEM, "out of memory for a memory file");
  if (len)
    memcpy (io->mem_rw, initial, len);
  io->mem = io->mem_rw;
  io->size = len;
  io->mem_max = max;
  return 0;
}

void
qcx_io_close (struct qcx_io *io)
{
  if (io->fd >= 0)
    close (io->fd);
  io->fd = -1;
  free (io->mem_rw);
  io->mem_rw = NULL;
  io->mem = NULL;
}

void
qcx_io_inject_fault (struct qcx_io *io, enum qcx_io_op op, uint64_t nth,
                     int errnum, bool persistent)
{
  io->faults[op] = (struct qcx_io_fault) { nth, errnum, persistent, false };
}

/* An injected failure for this call of OP, or 0. */
static int
injected (struct qcx_io *io, enum qcx_io_op op)
{
  struct qcx_io_fault *f = &io->faults[op];
  uint64_t left = __atomic_load_n (&f->countdown, __ATOMIC_ACQUIRE);

  if (__atomic_load_n (&f->triggered, __ATOMIC_ACQUIRE))
    return f->persistent ? f->errnum : 0;
  /* Count down atomically: requests may run on several threads. */
  while (left > 0 &&
         !__atomic_compare_exchange_n (&f->countdown, &left, left - 1, false,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    ;
  if (left != 1)
    return 0;
  __atomic_store_n (&f->triggered, true, __ATOMIC_RELEASE);
  return f->errnum;
}

static int
fail_injected (struct qcx_io *io, enum qcx_io_op op, const char *what,
               struct qcx_err *err)
{
  int e = injected (io, op);

  if (e == 0)
    return 0;
  return qcx_error (err, e, "%s %s: %s (injected)", op_names[op], what,
                    qcx_strerror (e));
}

int
qcx_io_pread (const struct qcx_io *io, void *buf, size_t count,
              uint64_t offset, const char *what, struct qcx_err *err)
{
  char *p = buf;

  if (!qcx_io_contains (io, offset, count))
    return qcx_error (err, EIO,
                      "%s at offset 0x%llx (+%zu bytes) is beyond the end "
                      "of the file (0x%llx bytes)",
                      what, (unsigned long long) offset, count,
                      (unsigned long long) qcx_io_size (io));
  if (io->fd < 0) {
    memcpy (buf, io->mem + offset, count);
    return 0;
  }
  while (count > 0) {
    ssize_t r = pread (io->fd, p, count, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return qcx_error (err, errno, "reading %s at offset 0x%llx: %s", what,
                        (unsigned long long) offset, qcx_strerror (errno));
    }
    if (r == 0)
      /* The file shrank under us. */
      return qcx_error (err, EIO, "reading %s at offset 0x%llx: "
                        "unexpected end of file", what,
                        (unsigned long long) offset);
    p += r;
    count -= r;
    offset += r;
  }
  return 0;
}

static int
check_writable (const struct qcx_io *io, const char *what,
                struct qcx_err *err)
{
  if (io->readonly || (io->fd < 0 && io->mem_rw == NULL))
    return qcx_error (err, EROFS, "writing %s: the image is read-only", what);
  return 0;
}

/* Writable memory backend: make room for SIZE bytes. */
static int
memory_reserve (struct qcx_io *io, uint64_t size, struct qcx_err *err)
{
  uint64_t cap = io->mem_cap;
  uint8_t *p;

  if (size > io->mem_max)
    return qcx_error (err, ENOSPC, "memory file full (%llu bytes)",
                      (unsigned long long) io->mem_max);
  if (size <= cap)
    return 0;
  while (cap < size)
    cap = cap * 2 < io->mem_max ? cap * 2 : io->mem_max;
  p = realloc (io->mem_rw, cap);
  if (p == NULL)
    return qcx_error (err, ENOMEM, "out of memory for a memory file");
  memset (p + io->mem_cap, 0, cap - io->mem_cap);
  io->mem_rw = p;
  io->mem = p;
  io->mem_cap = cap;
  return 0;
}

static void
grow_size (struct qcx_io *io, uint64_t end)
{
  uint64_t old = qcx_io_size (io);

  while (end > old &&
         !__atomic_compare_exchange_n (&io->size, &old, end, false,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    ;
}

int
qcx_io_pwrite (struct qcx_io *io, const void *buf, size_t count,
               uint64_t offset, const char *what, struct qcx_err *err)
{
  const char *p = buf;

  if (check_writable (io, what, err) == -1 ||
      fail_injected (io, QCX_IO_PWRITE, what, err) == -1)
    return -1;
  if (io->fd < 0) {
    if (memory_reserve (io, offset + count, err) == -1)
      return -1;
    memcpy (io->mem_rw + offset, buf, count);
    grow_size (io, offset + count);
    return 0;
  }
  while (count > 0) {
    ssize_t r = pwrite (io->fd, p, count, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return qcx_error (err, errno, "writing %s at offset 0x%llx: %s", what,
                        (unsigned long long) offset, qcx_strerror (errno));
    }
    p += r;
    count -= r;
    offset += r;
  }
  /* Writes past the end grow the file: keep the size in step. */
  grow_size (io, offset);
  return 0;
}

int
qcx_io_pwrite_zeroes (struct qcx_io *io, uint64_t count, uint64_t offset,
                      const char *what, struct qcx_err *err)
{
  static const char zeroes[65536];

  while (count > 0) {
    size_t n = count < sizeof zeroes ? count : sizeof zeroes;
    if (qcx_io_pwrite (io, zeroes, n, offset, what, err) == -1)
      return -1;
    count -= n;
    offset += n;
  }
  return 0;
}

int
qcx_io_sync (struct qcx_io *io, struct qcx_err *err)
{
  int e;

  if (io->readonly)
    return 0;
  e = __atomic_load_n (&io->sync_errno, __ATOMIC_ACQUIRE);
  if (e)
    return qcx_error (err, e, "an earlier fdatasync failed (%s): what was "
                      "written since cannot be made durable; restart nbdkit "
                      "(the image on disk stays consistent)",
                      qcx_strerror (e));
  if (fail_injected (io, QCX_IO_SYNC, "file", err) == -1)
    e = io->faults[QCX_IO_SYNC].errnum;
  else if (io->fd >= 0 && fdatasync (io->fd) == -1) {
    e = errno;
    qcx_error (err, e, "fdatasync: %s", qcx_strerror (e));
  }
  if (e == 0)
    return 0;
  /* The kernel may have dropped the pages it could not write and will
   * not report that again: a later fdatasync could succeed without
   * them.  So every later sync fails, as QEMU's does after one failure.
   */
  __atomic_store_n (&io->sync_errno, e, __ATOMIC_RELEASE);
  return -1;
}

int
qcx_io_truncate (struct qcx_io *io, uint64_t size, struct qcx_err *err)
{
  if (check_writable (io, "file size", err) == -1 ||
      fail_injected (io, QCX_IO_TRUNCATE, "file", err) == -1)
    return -1;
  if (io->fd < 0) {
    if (memory_reserve (io, size, err) == -1)
      return -1;
    if (size < io->size)
      memset (io->mem_rw + size, 0, io->size - size);
  }
  else if (ftruncate (io->fd, size) == -1)
    return qcx_error (err, errno, "ftruncate: %s", qcx_strerror (errno));
  __atomic_store_n (&io->size, size, __ATOMIC_RELEASE);
  return 0;
}

void
qcx_io_punch_hole (struct qcx_io *io, uint64_t offset, uint64_t len)
{
  if (io->readonly)
    return;
  if (io->fd < 0) {
    if (io->mem_rw && offset < io->size)
      memset (io->mem_rw + offset, 0,
              len < io->size - offset ? len : io->size - offset);
    return;
  }
  (void) fallocate (io->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                    offset, len);
}
