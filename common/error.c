/* qcow2x common library: error reporting (see error.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

int
qcx_error (struct qcx_err *err, int errnum, const char *fmt, ...)
{
  va_list ap;
  int n;

  if (err) {
    err->errnum = errnum;
    va_start (ap, fmt);
    n = vsnprintf (err->msg, sizeof err->msg, fmt, ap);
    va_end (ap);
    if (n >= (int) sizeof err->msg)
      memcpy (err->msg + sizeof err->msg - 4, "...", 4);
  }
  return -1;
}

const char *
qcx_strerror (int errnum)
{
  const char *s = strerrordesc_np (errnum);
  return s ? s : "Unknown error";
}
