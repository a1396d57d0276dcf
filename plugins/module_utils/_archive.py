# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup archive: a plain ``.tar.gz`` written in one pass, read as a stream.

Layout of the compressed file (a gzip file may hold several members one after
the other; ``gzip -d``, ``tar xzf`` and Python's ``tarfile`` read them as one
stream):

1. a *stored* (uncompressed) gzip member of fixed size holding the 512-byte tar
   header of the database dump.  It is written as a placeholder first and
   filled in when the dump is complete and its size is known;
2. the dump's bytes, compressed by ``pigz``/``gzip`` straight into the archive
   file while Python hashes them on the way (no uncompressed copy on disk, no
   recompression of the dump afterwards);
3. one more compressed gzip member with the rest of the tar stream: the dump's
   block padding, the configuration, spool and console files, ``manifest.json``
   (written last) and the end-of-archive blocks.

Reading never extracts to disk: :func:`iter_members` streams the tar members
through a decompressor process (or Python's ``gzip``) and hands out readers.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import hashlib
import os
import shutil
import struct
import subprocess
import tarfile
import zlib

from ansible_collections.pandorafms.server.plugins.module_utils._errors import (
    MissingDependency, OperationFailed, PreconditionFailed)

BLOCK = 512
CHUNK = 1 << 20
MANIFEST_NAME = "manifest.json"
F_SETPIPE_SZ = 1031  # Linux fcntl; larger pipes mean fewer system calls


def _grow_pipe(fileobj):
    try:
        import fcntl
        fcntl.fcntl(fileobj.fileno(), F_SETPIPE_SZ, CHUNK)
    except (ImportError, IOError, OSError, ValueError):
        pass


def write_all(fd, data):
    view = memoryview(data)
    while view:
        done = os.write(fd, view)
        view = view[done:]


def stored_gzip_member(payload):
    """A gzip member holding ``payload`` (< 64 KiB) in one uncompressed deflate block.

    Its size is ``len(payload) + 23`` whatever the payload, which is what lets
    the dump's header be written after the dump.
    """
    size = len(payload)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, no mtime, OS unknown
    block = struct.pack("<BHH", 1, size, size ^ 0xFFFF)  # BFINAL=1, BTYPE=00 (stored)
    trailer = struct.pack("<II", zlib.crc32(payload) & 0xFFFFFFFF, size & 0xFFFFFFFF)
    return header + block + payload + trailer


def tar_header(info, fmt=tarfile.PAX_FORMAT):
    return info.tobuf(format=fmt, encoding="utf-8", errors="surrogateescape")


def padding(size):
    return b"\0" * ((BLOCK - size % BLOCK) % BLOCK)


# -- compressors -------------------------------------------------------------
def find_tool(*names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def choose_compressor(compression="auto"):
    """``(kind, path)``: kind is ``pigz``, ``gzip`` (program) or ``zlib`` (Python, no program)."""
    compression = compression or "auto"
    if compression not in ("auto", "pigz", "gzip"):
        raise PreconditionFailed("compression must be auto, pigz or gzip, not %r" % compression)
    if compression in ("auto", "pigz"):
        pigz = find_tool("pigz")
        if pigz:
            return "pigz", pigz
        if compression == "pigz":
            raise MissingDependency("compression=pigz but pigz is not installed on this host "
                                    "(Debian/RHEL package pigz); use compression=auto or gzip")
    gzip_prog = find_tool("gzip")
    if gzip_prog:
        return "gzip", gzip_prog
    return "zlib", None


class _ExternalCompressor(object):
    """``pigz -c`` / ``gzip -c`` whose output goes straight into the archive file descriptor."""

    def __init__(self, kind, path, out_fd, level):
        self.kind = kind
        self.cmd = cmd = [path, "-n", "-c", "-%d" % level]  # -n: no name or time in the header
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out_fd, stderr=subprocess.PIPE,
                                     close_fds=True)
        _grow_pipe(self.proc.stdin)
        self.fd = self.proc.stdin.fileno()

    def write(self, data):
        try:
            write_all(self.fd, data)
        except (IOError, OSError) as exc:
            if exc.errno == errno.EPIPE:
                self.close(broken=True)
            raise

    def close(self, broken=False):
        try:
            self.proc.stdin.close()
        except (IOError, OSError):
            pass
        err = self.proc.stderr.read().decode("utf-8", "replace").strip()
        self.proc.stderr.close()
        rc = self.proc.wait()
        if rc != 0 or broken:
            raise OperationFailed("the compressor %s failed (exit %s)%s; is the destination's "
                                  "filesystem full?" % (self.kind, rc, ": " + err[-500:] if err else ""))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stderr):
            try:
                stream.close()
            except (IOError, OSError):
                pass


class _ZlibCompressor(object):
    """Fallback without any compression program: gzip written by Python's zlib."""

    kind = "zlib"

    def __init__(self, out_fd, level):
        self.out_fd = out_fd
        self.obj = zlib.compressobj(level, zlib.DEFLATED, 31)

    def write(self, data):
        write_all(self.out_fd, self.obj.compress(data))

    def close(self):
        write_all(self.out_fd, self.obj.flush())

    def kill(self):
        pass


def open_compressor(kind, path, out_fd, level=6):
    if kind == "zlib":
        return _ZlibCompressor(out_fd, level)
    return _ExternalCompressor(kind, path, out_fd, level)


class _BufferedSink(object):
    """Collects small writes (tar headers, small files) into big ones for the compressor."""

    def __init__(self, target, size=CHUNK):
        self.target = target
        self.size = size
        self.parts = []
        self.length = 0

    def write(self, data):
        if len(data) >= self.size:
            self.flush()
            self.target.write(data)
            return
        self.parts.append(bytes(data))
        self.length += len(data)
        if self.length >= self.size:
            self.flush()

    def flush(self):
        if self.parts:
            self.target.write(b"".join(self.parts))
            self.parts = []
            self.length = 0


# -- writing -------------------------------------------------------------------
class ArchiveWriter(object):
    """Writes the archive file described in the module docstring.

    ``members`` maps every member name to ``{"type", "size", "sha256", ...}``;
    the manifest is built from it.  The caller owns the temporary path and
    removes it on failure (:meth:`abort` kills any helper process).
    """

    def __init__(self, path, compression="auto", level=6):
        self.path = path
        self.kind, self.tool = choose_compressor(compression)
        self.level = level
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchmod(self.fd, 0o600)
        self.members = {}
        self.order = []
        self._pending_pad = b""
        self._segment = None
        self._sink = None

    # A dump (or any stream of unknown size) as a member of its own.
    def add_stream(self, info, produce):
        """Write member ``info`` whose data ``produce(write)`` generates; returns (size, sha256)."""
        self._close_segment()
        slot = os.lseek(self.fd, 0, os.SEEK_END)
        placeholder = stored_gzip_member(b"\0" * BLOCK)
        write_all(self.fd, placeholder)
        digest = hashlib.sha256()
        state = {"size": 0}
        comp = open_compressor(self.kind, self.tool, self.fd, self.level)
        try:
            def write(data):
                digest.update(data)
                state["size"] += len(data)
                comp.write(data)
            produce(write)
            comp.close()
        except BaseException:
            comp.kill()
            raise
        os.lseek(self.fd, 0, os.SEEK_END)
        info.size = state["size"]
        header = tar_header(info, tarfile.GNU_FORMAT)
        if len(header) != BLOCK:
            raise OperationFailed("internal error: the header of %s is %d bytes, not %d"
                                  % (info.name, len(header), BLOCK))
        member = stored_gzip_member(header)
        if len(member) != len(placeholder):
            raise OperationFailed("internal error: header slot size mismatch")
        os.pwrite(self.fd, member, slot)
        self._pending_pad = padding(info.size)
        self._record(info, digest.hexdigest())
        return info.size, digest.hexdigest()

    def _open_segment(self):
        if self._segment is None:
            os.lseek(self.fd, 0, os.SEEK_END)
            self._segment = open_compressor(self.kind, self.tool, self.fd, self.level)
            self._sink = _BufferedSink(self._segment)
            if self._pending_pad:
                self._sink.write(self._pending_pad)
                self._pending_pad = b""
        return self._sink

    def _close_segment(self):
        if self._segment is not None:
            self._sink.flush()
            self._segment.close()
            self._segment = None
            self._sink = None

    def _record(self, info, sha256=None, **extra):
        entry = {"type": member_type(info), "size": info.size if info.isreg() else 0}
        if sha256:
            entry["sha256"] = sha256
        if info.issym():
            entry["target"] = info.linkname
        entry.update(extra)
        if info.name in self.members:
            raise OperationFailed("internal error: member %s added twice" % info.name)
        self.members[info.name] = entry
        self.order.append(info.name)

    def add_special(self, info):
        """A directory or symbolic link member (no data)."""
        self._open_segment().write(tar_header(info))
        self._record(info)

    def add_file(self, info, handle):
        """A regular file: exactly ``info.size`` bytes are written (zero-padded if the file shrank).

        Returns ``(sha256, changed_while_reading)``.
        """
        sink = self._open_segment()
        sink.write(tar_header(info))
        digest = hashlib.sha256()
        left = info.size
        while left > 0:
            data = handle.read(min(CHUNK, left))
            if not data:
                break
            digest.update(data)
            sink.write(data)
            left -= len(data)
        short = left > 0
        if short:
            filler = b"\0" * left
            digest.update(filler)
            sink.write(filler)
        sink.write(padding(info.size))
        sha = digest.hexdigest()
        self._record(info, sha)
        return sha, short or bool(handle.read(1))

    def add_bytes(self, info, data):
        info.size = len(data)
        sink = self._open_segment()
        sink.write(tar_header(info))
        sink.write(data)
        sink.write(padding(len(data)))
        sha = hashlib.sha256(data).hexdigest()
        return sha

    def finish(self, manifest_bytes, info):
        """Write the manifest (not listed in itself), the end blocks, flush and fsync."""
        self.add_bytes(info, manifest_bytes)
        sink = self._open_segment()
        sink.write(b"\0" * (2 * BLOCK))
        self._close_segment()
        end = os.lseek(self.fd, 0, os.SEEK_END)
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = None
        return end

    def abort(self):
        if self._segment is not None:
            self._segment.kill()
            self._segment = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def member_type(info):
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    return "other"


# -- reading -------------------------------------------------------------------
class _PythonGzipStream(object):
    def __init__(self, path):
        import gzip
        self.handle = gzip.open(path, "rb")

    def read(self, size=-1):
        try:
            return self.handle.read(size)
        except EOFError:
            raise PreconditionFailed("the archive is truncated (compressed stream ends early)")
        except (OSError, zlib.error) as exc:
            raise PreconditionFailed("the archive is not a valid gzip file: %s" % exc)


class ArchiveStream(object):
    """``with ArchiveStream(path) as members:`` iterates ``(TarInfo, reader or None)``.

    Reading stops at the end of the tar stream; a truncated or corrupt file
    raises :class:`PreconditionFailed` (from the decompressor's exit status or
    from the tar reader).
    """

    def __init__(self, path, compression="auto"):
        self.path = path
        self.proc = None
        self.tar = None
        self.complete = False
        kind, tool = choose_compressor(compression)
        if kind == "zlib":
            self.source = _PythonGzipStream(path)
        else:
            self.proc = subprocess.Popen([tool, "-d", "-c", path], stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, close_fds=True)
            _grow_pipe(self.proc.stdout)
            self.source = self.proc.stdout
        self.kind = kind

    def __enter__(self):
        try:
            self.tar = tarfile.open(fileobj=self.source, mode="r|", bufsize=CHUNK)
        except tarfile.TarError as exc:
            self._raise_decompressor("the archive %s is not a tar.gz archive (%s)" % (self.path, exc))
        return self._iterate()

    def _iterate(self):
        while True:
            try:
                info = self.tar.next()
            except tarfile.TarError as exc:
                self._raise_decompressor("the archive %s is damaged: %s" % (self.path, exc))
            if info is None:
                break
            reader = _MemberReader(self, info) if info.isreg() else None
            yield info, reader
            if reader is not None:
                reader.drain()
        self.complete = True

    def _raise_decompressor(self, fallback):
        err = self.finish_decompressor(kill=True)
        raise PreconditionFailed(err or fallback)

    def finish_decompressor(self, kill=False):
        """Wait for (or kill) the decompressor; return its error message, if any."""
        if self.proc is None:
            return None
        if kill and self.proc.poll() is None:
            # Drain quickly: a decompressor blocked on a full pipe never exits.
            self.proc.kill()
        else:
            while self.proc.stdout.read(CHUNK):
                pass
        err = self.proc.stderr.read().decode("utf-8", "replace").strip()
        rc = self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.proc = None
        if rc != 0 and not kill:
            return "the archive %s is damaged or truncated: %s (exit %s)" % (
                self.path, err.splitlines()[-1] if err else "decompression failed", rc)
        if kill and err:
            return "the archive %s is damaged or truncated: %s" % (self.path, err.splitlines()[-1])
        return None

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and self.complete:
            err = self.finish_decompressor()
            if err:
                raise PreconditionFailed(err)
        else:
            self.finish_decompressor(kill=True)
        return False


class _MemberReader(object):
    """Reads one member's data in chunks, hashing as it goes."""

    def __init__(self, stream, info):
        self.stream = stream
        self.info = info
        self.fileobj = stream.tar.extractfile(info)
        self.digest = hashlib.sha256()
        self.read_bytes = 0

    def read(self, size=CHUNK):
        try:
            data = self.fileobj.read(size)
        except tarfile.TarError as exc:
            self.stream._raise_decompressor("the archive %s is truncated inside %s (%s)" % (
                self.stream.path, self.info.name, exc))
        except PreconditionFailed:
            raise
        except (IOError, OSError, EOFError, zlib.error) as exc:
            self.stream._raise_decompressor("the archive %s is damaged inside %s (%s)" % (
                self.stream.path, self.info.name, exc))
        if data:
            self.digest.update(data)
            self.read_bytes += len(data)
        elif self.read_bytes < self.info.size:
            self.stream._raise_decompressor("the archive %s is truncated inside %s" % (
                self.stream.path, self.info.name))
        return data

    def drain(self):
        while self.read_bytes < self.info.size and self.read():
            pass

    def hexdigest(self):
        return self.digest.hexdigest()
