/* qcow2x common library: error reporting.
 *
 * Contract: every fallible function in common/ takes a caller-owned
 * `struct qcx_err *` (usually on the caller's stack), returns -1 on
 * failure and fills it with an errno value and a one-line message.
 * Nothing in common/ keeps error state of its own, so concurrent
 * requests on one image never see each other's errors.  The plugin
 * and filter turn the message into nbdkit_error() and errno.
 */
#ifndef QCX_ERROR_H
#define QCX_ERROR_H

/* Room for messages that name files: a path may be PATH_MAX (4096)
 * bytes, and chain errors name several.  A longer message is cut and
 * ends in "...".  Request paths set the struct up with qcx_err_clear
 * rather than zero-filling all of it for every request.
 */
#define QCX_ERR_MSG_MAX 4096

struct qcx_err {
  int errnum;                   /* an errno value, e.g. EIO, EINVAL */
  char msg[QCX_ERR_MSG_MAX];    /* one line, no trailing newline */
};

static inline void
qcx_err_clear (struct qcx_err *err)
{
  err->errnum = 0;
  err->msg[0] = '\0';
}

/* Set *err (which may be NULL) and return -1, so callers can write
 * `return qcx_error (err, EIO, "...");`.
 */
int qcx_error (struct qcx_err *err, int errnum, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

/* The text of errno value ERRNUM, untranslated.  Unlike strerror(3) it
 * takes no locale lock, so it is safe anywhere (glibc's strerror goes
 * through gettext and the locale lock; under a preloaded sanitizer
 * runtime that lock was seen left corrupted, deadlocking exit).
 */
const char *qcx_strerror (int errnum);

#endif /* QCX_ERROR_H */
