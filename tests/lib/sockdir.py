"""Where test servers put their Unix sockets.

A socket's path is limited to 107 bytes (sun_path), and the tests' own
directories sit under the checkout, whose path is as long as the machine
makes it: a CI clone's is longer than a developer's.  Sockets therefore
go in short directories.
"""
import atexit
import os
import shutil
import tempfile

_MAX_BASE = 40   # leaves room for "/qcx-sock.XXXXXXXX/s.sock"


def short_base():
    """$TMPDIR if its path is short, else /tmp."""
    base = tempfile.gettempdir()
    return base if len(os.fsencode(base)) <= _MAX_BASE else "/tmp"


def short_dir(prefix):
    """A new directory for sockets (and anything else), under short_base().
    The caller removes it."""
    return tempfile.mkdtemp(prefix=prefix, dir=short_base())


def socket_path(d, name="s.sock"):
    """A socket path that belongs with directory d: in d if that is short
    enough, else in a short directory removed at exit."""
    path = os.path.join(d, name)
    if len(os.fsencode(path)) <= 100:
        return path
    short = short_dir("qcx-sock.")
    atexit.register(shutil.rmtree, short, True)
    return os.path.join(short, name)
