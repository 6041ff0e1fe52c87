"""Multi-process mode: memory-mapped shard files in a directory, read back as one host.

Under a pre-fork server every worker is its own process, so per-thread lists in memory are
not enough: a scrape served by one worker must report every worker, and a worker killed
with SIGKILL must keep what it recorded. With ``multiproc_dir`` set, each thread of each
process records into its own file there, through a ``memoryview`` over a shared ``mmap``:
a count is in the page cache (and so in the file) the instant it is added, whatever
happens to the process afterwards.

File layout (little-endian; one format for shards and for the archive)::

    [0, 4096)            header: magic, version, kind, owner (pid, start time, token),
                         region offsets and capacities, CRC-32 of all of that;
                         at 512: table length in bytes (8-byte store), at 520: retired flag
    [table_off, ...)     series table: records (u32 length, u32 CRC-32, JSON payload,
                         padded to 8 bytes), appended before any slot of the series is used
    [int_off, ...)       int64 slots at the recording process's own offsets
    [float_off, ...)     float64 slots likewise

Because series offsets differ between processes, each file carries its own table and
readers sum by series key. A record is committed by the single aligned store of the new
table length after it is written, so a process killed mid-append leaves the file valid.

Files are created complete (written to a temporary name, then renamed). A file's owner is
its pid *and* that process's start time (from ``/proc/PID/stat``), both in the file name,
so a recycled pid is never mistaken for a live owner. Dead owners' files, and retired ones
(their thread exited, or the shard was replaced by a larger one), are merged into one
``archive.hp`` under an exclusive ``flock``: the new archive lists the files it absorbed and
is renamed into place before they are unlinked, so a crash at any point neither loses nor
double counts. Readers take the lock shared, so they never see a half-done compaction.

What can go wrong with a file never reaches the application: every page a mapping will be
written through is allocated (``posix_fallocate``) before it is used, so a full volume is an
``OSError`` on the slow path (counted, and the thread falls back to memory), never a SIGBUS
on a store; a lock held across ``fork()`` is closed in the child; and what a reader takes
from a file is validated (header and record checksums, record field types, slot ranges,
non-negative counts within bounds, finite non-negative floats) and set aside when it fails.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import mmap
import operator
import os
import secrets
import struct
import threading
import zlib
from dataclasses import dataclass, field

from .._metrics import MOMENTS_SERIES
from . import _faults, _state, _steady

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: multi-process mode is refused there
    fcntl = None  # type: ignore[assignment]

__all__: list[str] = []

MAGIC = b"HYPOPRB\x01"
VERSION = 1
HEADER_SIZE = 4096
KIND_SHARD = 0
KIND_ARCHIVE = 1
SHARD_PREFIX = "shard-"
SUFFIX = ".hp"
ARCHIVE_NAME = "archive" + SUFFIX
LOCK_NAME = ".hypoprobe.lock"
TMP_PREFIX = ".tmp-"
BAD_PREFIX = "bad-"
#: Pseudo-series of the archive naming the files already merged into it.
ABSORBED = "__absorbed__"
#: Series wider than this many slots (histograms) are summed as big integers.
_WIDE = 8
#: Compact once this many dead or retired files have piled up (checked at each collection).
COMPACT_AT = 8
#: A bucket count above this in one file is damage, not traffic (2**48: 2.8e14 requests).
MAX_COUNT = 1 << 48
_PAGE = mmap.PAGESIZE

# magic, version, kind, pid, start time, token, then (offset, capacity) of table, ints, floats
_STATIC = struct.Struct("<8sIIqQ16sQQQQQQ")
_CRC = struct.Struct("<I")
_TABLE_LEN_AT = 512
_RETIRED_AT = 520
_U64 = struct.Struct("<Q")
_RECORD = struct.Struct("<II")

#: One series as a file states it: key, layout name, then int and float offset and width.
Key = tuple[str, tuple[str, ...]]


@dataclass(frozen=True)
class Record:
    key: Key
    layout: str | None
    int_offset: int
    int_width: int
    float_offset: int
    float_width: int


def encode_record(rec: Record) -> bytes:
    payload = json.dumps(
        [
            rec.key[0],
            list(rec.key[1]),
            rec.layout,
            rec.int_offset,
            rec.int_width,
            rec.float_offset,
            rec.float_width,
        ],
        separators=(",", ":"),
    ).encode()
    raw = _RECORD.pack(len(payload), zlib.crc32(payload)) + payload
    return raw + b"\0" * (-len(raw) % 8)


class CorruptFile(Exception):
    """A file that fails validation: skipped, counted, never fatal."""


# --------------------------------------------------------------------------- owners


def start_time(pid: int) -> int:
    """The process' start time in clock ticks since boot (0 where /proc is unavailable)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; field 22 is start.
    fields = stat.rsplit(b")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return 0


def is_alive(pid: int, started: int) -> bool:
    """True while the process that started at ``started`` still runs (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return not os.path.isdir("/proc/self")  # no /proc at all: trust kill(0)
    fields = stat.rsplit(b")", 1)[-1].split()
    try:
        state, now_started = fields[0], int(fields[19])
    except (IndexError, ValueError):
        return True
    return state not in (b"Z", b"X") and started in (0, now_started)


def parse_owner(name: str) -> tuple[int, int] | None:
    """(pid, start time) from a shard file name ``shard-PID-START-TOKEN.hp``."""
    if not (name.startswith(SHARD_PREFIX) and name.endswith(SUFFIX)):
        return None
    parts = name[len(SHARD_PREFIX) : -len(SUFFIX)].split("-")
    if len(parts) != 3:
        return None
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:
        return None


# --------------------------------------------------------------------------- writing


def _allocate(fd: int, offset: int, length: int) -> None:
    """Give ``[offset, offset + length)`` real blocks, or raise OSError (ENOSPC and the like).

    The range is never one the mapping has written yet, so zeros are a safe fallback where
    ``posix_fallocate`` is missing or the file system does not support it.
    """
    if length <= 0:
        return
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, offset, length)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
    zeros = bytes(min(length, 1 << 16))
    done = 0
    while done < length:
        n = os.pwrite(fd, zeros[: length - done], offset + done)
        if n <= 0:
            raise OSError(errno.ENOSPC, "short write while allocating a shard file")
        done += n


def _header(
    *,
    kind: int,
    pid: int,
    started: int,
    token: bytes,
    table_cap: int,
    int_cap: int,
    float_cap: int,
) -> tuple[bytes, int]:
    """Static header bytes (with CRC) and the total file size."""
    table_off = HEADER_SIZE
    int_off = table_off + table_cap
    float_off = int_off + 8 * int_cap
    size = float_off + 8 * float_cap
    static = _STATIC.pack(
        MAGIC,
        VERSION,
        kind,
        pid,
        started,
        token,
        table_off,
        table_cap,
        int_off,
        int_cap,
        float_off,
        float_cap,
    )
    return static + _CRC.pack(zlib.crc32(static)), size


class ShardFile:
    """One thread's shard: a new file in ``directory``, mapped for recording."""

    def __init__(
        self,
        directory: str,
        *,
        pid: int,
        started: int,
        int_cap: int,
        float_cap: int,
        table_cap: int,
    ) -> None:
        token = secrets.token_bytes(16)
        self.pid = pid
        self.name = f"{SHARD_PREFIX}{pid}-{started}-{token.hex()}{SUFFIX}"
        self.path = os.path.join(directory, self.name)
        header, size = _header(
            kind=KIND_SHARD,
            pid=pid,
            started=started,
            token=token,
            table_cap=table_cap,
            int_cap=int_cap,
            float_cap=float_cap,
        )
        tmp = os.path.join(directory, f"{TMP_PREFIX}{self.name}")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            # Sparse: a region's pages are allocated as the series using them appear
            # (_allocate), so a thread's file costs disk only for what it records.
            os.ftruncate(fd, size)
            _allocate(fd, 0, HEADER_SIZE)
            os.pwrite(fd, header, 0)
            self._mm = mmap.mmap(fd, size)
            os.rename(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        finally:
            os.close(fd)
        self.table_off = HEADER_SIZE
        self.table_cap = table_cap
        self.int_off = HEADER_SIZE + table_cap
        self.int_cap = int_cap
        self.float_off = self.int_off + 8 * int_cap
        self.float_cap = float_cap
        self.table_len = 0
        #: Series of the process' table already recorded in this file (a prefix of it).
        self.n_series = 0
        #: How far each region's pages are allocated (bytes from the region's start).
        self._table_ready = self._ints_ready = self._floats_ready = 0

    def _reserve(self, region_off: int, ready: int, need: int, cap: int) -> int:
        """Allocate the region's pages up to ``need`` bytes; the new allocated length.

        A store through the mapping into a page the file system cannot back is SIGBUS, the
        death of the whole process; allocating first turns a full volume into an OSError
        here, on the slow path, which the caller counts and survives.
        """
        if need <= ready:
            return ready
        end = min(cap, -(-(region_off + need) // _PAGE) * _PAGE - region_off)
        fd = os.open(self.path, os.O_RDWR)
        try:
            _allocate(fd, region_off + ready, end - ready)
        finally:
            os.close(fd)
        return end

    def fits(self, table_bytes: int, ints: int, floats: int) -> bool:
        return (
            self.table_len + table_bytes <= self.table_cap
            and ints <= self.int_cap
            and floats <= self.float_cap
        )

    def append(self, records: list[bytes]) -> None:
        """Write records, then commit them with one 8-byte store of the table length."""
        data = b"".join(records)
        self._table_ready = self._reserve(
            self.table_off, self._table_ready, self.table_len + len(data), self.table_cap
        )
        start = self.table_off + self.table_len
        self._mm[start : start + len(data)] = data
        self.table_len += len(data)
        _U64.pack_into(self._mm, _TABLE_LEN_AT, self.table_len)
        self.n_series += len(records)

    def views(self, ints: int, floats: int) -> tuple[memoryview[int], memoryview[float]]:
        """int64 and float64 views over the first ``ints`` / ``floats`` slots (allocated)."""
        self._ints_ready = self._reserve(self.int_off, self._ints_ready, 8 * ints, 8 * self.int_cap)
        self._floats_ready = self._reserve(
            self.float_off, self._floats_ready, 8 * floats, 8 * self.float_cap
        )
        whole = memoryview(self._mm)
        iv = whole[self.int_off : self.int_off + 8 * ints].cast("q")
        fv = whole[self.float_off : self.float_off + 8 * floats].cast("d")
        return iv, fv

    def retire(self) -> None:
        """Nothing will write here any more: the file may be compacted while we live."""
        if os.getpid() != self.pid:
            return  # an inherited shard after fork belongs to the parent
        with contextlib.suppress(Exception):
            _U64.pack_into(self._mm, _RETIRED_AT, 1)


# --------------------------------------------------------------------------- reading


@dataclass
class Parsed:
    """A validated file: header facts and its series table (cached between scrapes)."""

    #: The static header bytes: random token included, so a new file never matches.
    ident: bytes
    kind: int
    int_off: int
    int_cap: int
    float_off: int
    float_cap: int
    table_off: int
    table_len: int = 0
    records: list[Record] = field(default_factory=list)
    absorbed: frozenset[str] = frozenset()
    n_ints: int = 0
    n_floats: int = 0
    retired: bool = False


_IDENT = _STATIC.size + _CRC.size


def _parse_header(head: bytes, size: int) -> Parsed:
    if len(head) < _TABLE_LEN_AT + 16 or head[:8] != MAGIC:
        raise CorruptFile("bad magic or short header")
    static = head[: _STATIC.size]
    (crc,) = _CRC.unpack_from(head, _STATIC.size)
    if zlib.crc32(static) != crc:
        raise CorruptFile("header checksum mismatch")
    (_, version, kind, _, _, _, t_off, t_cap, i_off, i_cap, f_off, f_cap) = _STATIC.unpack(static)
    if version != VERSION:
        raise CorruptFile(f"unknown version {version}")
    if (
        t_off != HEADER_SIZE
        or i_off != t_off + t_cap
        or f_off != i_off + 8 * i_cap
        or size < f_off + 8 * f_cap
    ):
        raise CorruptFile("regions do not fit the file")
    parsed = Parsed(head[:_IDENT], kind, i_off, i_cap, f_off, f_cap, t_off)
    parsed.retired = _U64.unpack_from(head, _RETIRED_AT)[0] == 1
    return parsed


def _parse_records(parsed: Parsed, table: bytes) -> None:
    pos = 0
    while pos < len(table):
        if pos + _RECORD.size > len(table):
            raise CorruptFile("truncated record")
        length, crc = _RECORD.unpack_from(table, pos)
        payload = table[pos + _RECORD.size : pos + _RECORD.size + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            raise CorruptFile("series record checksum mismatch")
        pos += _RECORD.size + length
        pos += -pos % 8
        try:
            metric, labels, layout, io, iw, fo, fw = json.loads(payload)
        except (ValueError, TypeError) as exc:
            raise CorruptFile("undecodable series record") from exc
        # A valid checksum says the record is what was written, not that a well-formed
        # writer wrote it: check every field's type before any arithmetic on it.
        if (
            not isinstance(metric, str)
            or not isinstance(labels, list)
            or not all(isinstance(label, str) for label in labels)
            or not (layout is None or isinstance(layout, str))
            or not all(type(v) is int for v in (io, iw, fo, fw))
        ):
            raise CorruptFile("series record of the wrong shape")
        rec = Record((metric, tuple(labels)), layout, io, iw, fo, fw)
        if rec.key[0] == ABSORBED:
            parsed.absorbed = parsed.absorbed | frozenset(rec.key[1])
            continue
        if min(io, iw, fo, fw) < 0 or io + iw > parsed.int_cap or fo + fw > parsed.float_cap:
            raise CorruptFile("series slots outside the file")
        parsed.records.append(rec)
        parsed.n_ints = max(parsed.n_ints, io + iw)
        parsed.n_floats = max(parsed.n_floats, fo + fw)


def read_file(path: str, cached: Parsed | None, with_data: bool) -> tuple[Parsed, bytes, bytes]:
    """Validate and parse a file (reusing ``cached``'s table), optionally reading its slots."""
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        head = os.pread(fd, _TABLE_LEN_AT + 16, 0)
        if cached is not None and cached.ident == head[:_IDENT]:
            parsed = cached
            parsed.retired = _U64.unpack_from(head, _RETIRED_AT)[0] == 1
        else:
            parsed = _parse_header(head, st.st_size)
        (table_len,) = _U64.unpack_from(head, _TABLE_LEN_AT)
        if table_len < parsed.table_len or parsed.table_off + table_len > parsed.int_off:
            raise CorruptFile("series table length out of range")
        if table_len > parsed.table_len:
            # The table only grows: parse just the new records.
            more = os.pread(fd, table_len - parsed.table_len, parsed.table_off + parsed.table_len)
            if len(more) != table_len - parsed.table_len:
                raise CorruptFile("series table truncated")
            _parse_records(parsed, more)
            parsed.table_len = table_len
        ints = floats = b""
        if with_data:
            ints = os.pread(fd, 8 * parsed.n_ints, parsed.int_off)
            floats = os.pread(fd, 8 * parsed.n_floats, parsed.float_off)
            if len(ints) != 8 * parsed.n_ints or len(floats) != 8 * parsed.n_floats:
                raise CorruptFile("data regions truncated")
        return parsed, ints, floats
    finally:
        os.close(fd)


_ZEROS = memoryview(bytes(8 * 4096))


def _zero_words(data: bytes, lo: int, hi: int, *, front: bool) -> int:
    """How many all-zero 8-byte words ``data[lo:hi]`` starts (or ends) with.

    A binary search of ``memcmp`` calls (``startswith`` / ``endswith`` against zeros):
    a dozen C calls instead of a Python or per-byte look at every slot.
    """
    test = data.startswith if front else data.endswith
    words = (hi - lo) // 8
    if words * 8 > len(_ZEROS):
        return 0
    if test(_ZEROS[: 8 * words], lo, hi):
        return words
    low, high = 0, words  # the first `low` words are zero; the first `high` are not all zero
    while high - low > 1:
        mid = (low + high) // 2
        if test(_ZEROS[: 8 * mid], lo, hi):
            low = mid
        else:
            high = mid
    return low


class Totals:
    """Sums by series key over many files: a table that only grows, and flat slot lists."""

    def __init__(self) -> None:
        self.index: dict[Key, tuple[str | None, int, int, int, int]] = {}
        self.order: list[Key] = []
        self.ints: list[int] = []
        self.floats: list[float] = []

    def copy(self) -> Totals:
        """An independent copy: the same keys, offsets and sums."""
        out = Totals()
        out.index = dict(self.index)
        out.order = list(self.order)
        out.ints = list(self.ints)
        out.floats = list(self.floats)
        return out

    def slot(self, key: Key, layout: str | None, iw: int, fw: int) -> tuple[int, int] | None:
        """Offsets of ``key`` in the sums, allocated on first sight; None on a width clash."""
        found = self.index.get(key)
        if found is None:
            found = (layout, len(self.ints), iw, len(self.floats), fw)
            self.index[key] = found
            self.order.append(key)
            self.ints.extend([0] * iw)
            self.floats.extend([0.0] * fw)
        if found[0] != layout or found[2] != iw or found[4] != fw:
            return None
        return found[1], found[3]

    def add(
        self,
        records: list[Record],
        ints: bytes,
        floats: bytes,
        damaged: list[Key] | None = None,
    ) -> bool:
        """Add one file's slots; False when some series clashed with another file's shape.

        A series whose slots cannot be counts (a negative value, a bucket above
        :data:`MAX_COUNT`, a float that is negative or not finite, more requests with a
        probe call than requests) is damage: it is left out and its key appended to
        ``damaged``.
        """
        ok = True
        target = self.ints
        ftarget = self.floats
        add = operator.add
        fview = memoryview(floats).cast("d") if floats else None
        for rec in records:
            at = self.slot(rec.key, rec.layout, rec.int_width, rec.float_width)
            if at is None:
                ok = False
                continue
            ti, tf = at
            iw = rec.int_width
            lo = 8 * rec.int_offset
            vals: tuple[int, ...] = ()
            first = tail = 0
            if iw > _WIDE:
                # A histogram: hundreds of buckets, mostly empty, then its sum. Add only
                # the span between the first and the last non-zero bucket, and the sum.
                last = lo + 8 * (iw - 1)
                first = _zero_words(ints, lo, last, front=True)
                if first < iw - 1:
                    end = iw - 1 - _zero_words(ints, lo + 8 * first, last, front=False)
                    vals = struct.unpack_from(f"<{end - first}q", ints, lo + 8 * first)
                (tail,) = struct.unpack_from("<q", ints, last)
                sound = tail >= 0 and (not vals or (min(vals) >= 0 and max(vals) <= MAX_COUNT))
            elif iw:
                vals = struct.unpack_from(f"<{iw}q", ints, lo)
                sound = min(vals) >= 0
                if rec.key[0] == MOMENTS_SERIES and iw >= 2:
                    # requests with a probe call are some of the requests (the count is
                    # written first, so a request in flight never breaks this)
                    sound = sound and vals[1] <= vals[0]
            else:
                sound = True
            fvals: list[float] = []
            if rec.float_width and fview is not None:
                fvals = list(fview[rec.float_offset : rec.float_offset + rec.float_width])
                sound = sound and all(0.0 <= v < math.inf for v in fvals)
            if not sound:
                if damaged is not None:
                    damaged.append(rec.key)
                continue
            if iw > _WIDE:
                if vals:
                    a, b = ti + first, ti + first + len(vals)
                    target[a:b] = map(add, target[a:b], vals)
                target[ti + iw - 1] += tail
            elif iw:
                target[ti : ti + iw] = map(add, target[ti : ti + iw], vals)
            for j, v in enumerate(fvals):
                ftarget[tf + j] += v
        return ok


#: Lock file descriptors open in this process (taken or being taken). A forked child shares
#: their open file descriptions, and with them any ``flock`` they hold: it closes its copies
#: at once, so a fork made during a compaction neither blocks every scrape of the host while
#: the child lives nor deadlocks the child's own first scrape.
_LOCK_FDS: set[int] = set()


def _close_inherited_locks() -> None:
    for fd in list(_LOCK_FDS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _LOCK_FDS.clear()


_state.owns("multiproc", after_fork=_close_inherited_locks)


class _Lock:
    """``flock`` on the directory's lock file, shared or exclusive; never inherited by fork.

    ``held`` is False when the lock file could not be opened at all (directory deleted,
    read-only before any scrape created the lock file): the caller decides whether to go on
    without it. ``busy`` is True when ``blocking=False`` and another process holds it.
    """

    def __init__(self, path: str, exclusive: bool, blocking: bool = True) -> None:
        self.fd = -1
        self.busy = False
        lock_path = os.path.join(path, LOCK_NAME)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            try:
                fd = os.open(lock_path, os.O_RDONLY)  # flock needs no write access
            except OSError:
                return
        _LOCK_FDS.add(fd)  # before the lock is taken: a fork from now on closes it
        self.fd = fd
        flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            self.busy = True
        except OSError:
            self.release()

    @property
    def held(self) -> bool:
        return self.fd >= 0 and not self.busy

    def release(self) -> None:
        fd, self.fd = self.fd, -1
        if fd < 0 or fd not in _LOCK_FDS:
            return  # closed by the fork handler: the number may be another file's by now
        # Unlock first: a fork between here and the close then inherits an unlocked fd.
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        _LOCK_FDS.discard(fd)
        with contextlib.suppress(OSError):
            os.close(fd)


def _inode(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return -1


class Directory:
    """Reads (and compacts) one multi-process directory; keeps parsed tables between scrapes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._cache: dict[str, Parsed] = {}
        #: Files that failed validation, by name, with the inode that failed: a file
        #: replaced under the same name (the archive, rewritten) is read again.
        self._bad: dict[str, int] = {}
        #: Series found damaged, per file: counted once each, set aside at compaction.
        self._damaged: dict[str, set[Key]] = {}
        # Scrapes may run in several threads at once; parsed tables are shared state.
        self._mutex = threading.Lock()

    def _names(self) -> list[str]:
        try:
            names = os.listdir(self.path)
        except OSError:
            _faults.record("multiproc_listdir")
            return []
        return sorted(n for n in names if n.startswith(SHARD_PREFIX) and n.endswith(SUFFIX))

    def _read(self, name: str, with_data: bool) -> tuple[Parsed, bytes, bytes] | None:
        """A file's parse and slots, or None when it vanished or is corrupt (counted once)."""
        path = os.path.join(self.path, name)
        if name in self._bad:
            if _inode(path) == self._bad[name]:
                return None
            del self._bad[name]
        try:
            got = read_file(path, self._cache.get(name), with_data)
        except FileNotFoundError:
            self._cache.pop(name, None)
            return None
        except (CorruptFile, OSError, ValueError, TypeError, struct.error):
            self._cache.pop(name, None)
            self._bad[name] = _inode(path)
            _faults.record("multiproc_corrupt_file")
            return None
        self._cache[name] = got[0]
        return got

    def note_damaged(self, name: str, keys: list[Key]) -> None:
        """Series of ``name`` whose slots failed validation: count each once."""
        seen = self._damaged.setdefault(name, set())
        for key in keys:
            if key not in seen:
                seen.add(key)
                _faults.record("multiproc_corrupt_data")

    def sources(self, with_data: bool) -> list[tuple[str, list[Record], bytes, bytes]]:
        """Every valid file's name, records and slots: the archive, then shards not absorbed.

        Never raises: a lock file that cannot be opened (the directory was deleted, or is
        read-only and no scrape created the lock file yet) is counted and the files are
        read without it (nobody can compact a directory nobody can write to).
        """
        out: list[tuple[str, list[Record], bytes, bytes]] = []
        with self._mutex:
            lock = _Lock(self.path, exclusive=False)
            try:
                if not lock.held:
                    _faults.record("multiproc_lock")
                absorbed: frozenset[str] = frozenset()
                if self._exists(ARCHIVE_NAME):
                    got = self._read(ARCHIVE_NAME, with_data)
                    if got is not None:
                        absorbed = got[0].absorbed
                        out.append((ARCHIVE_NAME, got[0].records, got[1], got[2]))
                names = self._names()
                for name in names:
                    if name not in absorbed:
                        got = self._read(name, with_data)
                        if got is not None:
                            out.append((name, got[0].records, got[1], got[2]))
                for gone in set(self._cache) - set(names) - {ARCHIVE_NAME}:
                    del self._cache[gone]
                for gone in set(self._damaged) - set(names) - {ARCHIVE_NAME}:
                    del self._damaged[gone]
            finally:
                lock.release()
        return out

    def compactable(self) -> list[str]:
        """Shard files no process will write again: dead owner, or retired by their thread."""
        out = []
        for name in self._names():
            owner = parse_owner(name)
            if owner is None:
                continue
            cached = self._cache.get(name)
            if (cached is not None and cached.retired) or not is_alive(*owner):
                out.append(name)
        return out

    def compact(self, force: bool = False) -> int:
        """Merge dead and retired files into the archive; return how many were merged.

        Non-blocking: when another process holds the lock (reading or compacting), skip.
        """
        lock = _Lock(self.path, exclusive=True, blocking=False)
        try:
            if not lock.held:
                return 0
            with self._mutex:
                return self._compact_locked(force)
        finally:
            lock.release()

    def _compact_locked(self, force: bool) -> int:
        names = self._names()
        present = set(names)
        archive = self._read(ARCHIVE_NAME, True) if self._exists(ARCHIVE_NAME) else None
        absorbed = archive[0].absorbed if archive is not None else frozenset()
        pending = [n for n in self.compactable() if n not in absorbed]
        leftovers = sorted(absorbed & present)  # merged earlier, unlink was interrupted
        if not pending and not leftovers and not self._bad:
            return 0
        if not force and len(pending) < COMPACT_AT and not leftovers and not self._bad:
            return 0
        if archive is None and ARCHIVE_NAME in self._bad:
            # Set the damaged archive aside *before* writing its replacement: sidelining by
            # name afterwards would move the new archive, and every count in it, away.
            self._sideline(ARCHIVE_NAME, f"{BAD_PREFIX}archive-{secrets.token_hex(4)}{SUFFIX}")
        totals = Totals()
        if archive is not None:
            damaged: list[Key] = []
            totals.add(archive[0].records, archive[1], archive[2], damaged)
            self.note_damaged(ARCHIVE_NAME, damaged)
        merged = []
        set_aside = []
        read: dict[str, tuple[Parsed, bytes, bytes]] = {}
        for name in pending:
            got = self._read(name, True)
            if got is None:
                continue
            read[name] = got
            damaged = []
            if not totals.add(got[0].records, got[1], got[2], damaged):
                _faults.record("multiproc_series_clash")
            if damaged:
                self.note_damaged(name, damaged)
                set_aside.append(name)
            merged.append(name)
        new_absorbed = sorted((absorbed & present) | set(merged))
        if merged:
            self._raise_for_regrouping(totals, archive, names, absorbed, read)
        if merged or archive is None:
            self._write_archive(totals, new_absorbed)
        for name in [*merged, *leftovers]:
            if name in set_aside:
                # Its sound series are in the archive; keep the file for a post-mortem.
                self._sideline(name, BAD_PREFIX + name)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.path, name))
            self._cache.pop(name, None)
            self._damaged.pop(name, None)
        self._sideline_bad()
        self._remove_stale_temps()
        return len(merged)

    def _raise_for_regrouping(
        self,
        totals: Totals,
        archive: tuple[Parsed, bytes, bytes] | None,
        names: list[str],
        absorbed: frozenset[str],
        merged: dict[str, tuple[Parsed, bytes, bytes]],
    ) -> None:
        """Raise the new archive's float sums by the ulps its regrouping loses (see _steady).

        Readers fold the archive, then the shards in name order: merging files that sort
        after live ones into the archive regroups those additions.
        """
        live: list[tuple[Parsed, bytes, bytes]] = []
        before = Totals()
        if archive is not None:
            before.add(archive[0].records, archive[1], archive[2])
        for name in names:
            if name in absorbed:
                continue
            got = merged.get(name)
            if got is None:
                got = self._read(name, True)
                if got is not None:
                    live.append(got)  # read once: both folds see the same counts
            if got is not None:
                before.add(got[0].records, got[1], got[2])

        def after_of(new_archive: Totals) -> Totals:
            after = new_archive.copy()
            for parsed, ints, floats in live:
                after.add(parsed.records, ints, floats)
            return after

        _steady.raise_archive(totals, before, after_of)

    def _exists(self, name: str) -> bool:
        return os.path.exists(os.path.join(self.path, name))

    def _sideline(self, name: str, to: str) -> None:
        with contextlib.suppress(OSError):
            os.replace(os.path.join(self.path, name), os.path.join(self.path, to))
        self._bad.pop(name, None)
        self._cache.pop(name, None)

    def _write_archive(self, totals: Totals, absorbed: list[str]) -> None:
        records = [encode_record(Record((ABSORBED, tuple(absorbed)), None, 0, 0, 0, 0))]
        for key in totals.order:
            layout, io, iw, fo, fw = totals.index[key]
            records.append(encode_record(Record(key, layout, io, iw, fo, fw)))
        table = b"".join(records)
        header, size = _header(
            kind=KIND_ARCHIVE,
            pid=0,
            started=0,
            token=secrets.token_bytes(16),
            table_cap=len(table),
            int_cap=len(totals.ints),
            float_cap=len(totals.floats),
        )
        body = bytearray(size)
        body[: len(header)] = header
        _U64.pack_into(body, _TABLE_LEN_AT, len(table))
        _U64.pack_into(body, _RETIRED_AT, 1)
        body[HEADER_SIZE : HEADER_SIZE + len(table)] = table
        at = HEADER_SIZE + len(table)
        struct.pack_into(f"<{len(totals.ints)}q", body, at, *totals.ints)
        at += 8 * len(totals.ints)
        struct.pack_into(f"<{len(totals.floats)}d", body, at, *totals.floats)
        tmp = os.path.join(self.path, f"{TMP_PREFIX}archive-{os.getpid()}{SUFFIX}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            os.replace(tmp, os.path.join(self.path, ARCHIVE_NAME))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # a full volume: leave no half archive behind
            raise
        self._cache.pop(ARCHIVE_NAME, None)
        self._bad.pop(ARCHIVE_NAME, None)

    def _sideline_bad(self) -> None:
        """Move corrupt files out of the scan set (kept for a post-mortem, never re-read).

        Only the very file that failed (same inode): one rewritten since under the same
        name has not been judged.
        """
        for name, inode in sorted(self._bad.items()):
            if name == ARCHIVE_NAME or _inode(os.path.join(self.path, name)) != inode:
                continue
            self._sideline(name, BAD_PREFIX + name)
        self._bad.clear()

    def _remove_stale_temps(self) -> None:
        """Temporary files left by processes that died while creating a shard or an archive.

        Called under the exclusive lock, which every archive writer holds: any temporary
        archive present now is a crashed compaction's.
        """
        try:
            names = os.listdir(self.path)
        except OSError:
            return
        for name in names:
            if not name.startswith(TMP_PREFIX):
                continue
            rest = name[len(TMP_PREFIX) :]
            owner = parse_owner(rest)
            stale = rest.startswith("archive-") or (owner is not None and not is_alive(*owner))
            if stale:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.path, name))


def validate_directory(path: str) -> str:
    """An absolute path to an existing, writable directory, or ValueError saying why."""
    full = os.path.abspath(path)
    if fcntl is None or not hasattr(os, "pread"):
        raise ValueError("multi-process mode needs a POSIX system (flock, pread, fork)")
    if not os.path.isdir(full):
        raise ValueError(f"{full} is not an existing directory (create it first)")
    if not os.access(full, os.W_OK | os.X_OK):
        raise ValueError(f"{full} is not writable by this process")
    return full
