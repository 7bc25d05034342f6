"""S3 as Firehose fills it: object keys in Firehose's layout, the list of objects, real files.

Keys (https://docs.aws.amazon.com/firehose/latest/dev/basic-deliver.html,
https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html):

* ``<evaluated prefix><stream name>-<stream version>-YYYY-MM-dd-HH-MM-SS-<uuid><extension>``;
* the prefix may hold ``!{timestamp:<Java DateTimeFormatter>}``, ``!{firehose:random-string}`` and
  ``!{firehose:error-output-type}``; a prefix without a timestamp expression gets
  ``yyyy/MM/dd/HH/`` appended (so the default prefix is ``YYYY/MM/dd/HH/``);
* every timestamp is the approximate arrival time of the **oldest** record in the object, in UTC
  (kinesim uses it for the object name's timestamp too).

:class:`S3Store` is a passive store: it lists the objects delivered to one bucket and, with a
``root`` (a local folder or any fsspec URL such as ``s3://...`` or ``memory://...``), writes each
object as a real file at ``<root>/<bucket>/<key>``: JSON lines (``.gz`` gzip, ``.zip`` zip, or
plain) or Parquet. Files are deterministic (no timestamps in the gzip or zip headers).
"""
from __future__ import annotations

import datetime as dt
import gzip
import io
import re
import uuid
import zipfile
from typing import Callable

import numpy as np
import pandas as pd

from kinesim.errors import ScenarioError

#: File extension Firehose adds per output format and compression.
EXTENSIONS = {("json", "gzip"): ".gz", ("json", "zip"): ".zip", ("json", "snappy"): ".snappy", ("json", "none"): "",
              ("parquet", "gzip"): ".parquet", ("parquet", "snappy"): ".parquet", ("parquet", "none"): ".parquet"}
_JAVA_TOKENS = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
_EXPR = re.compile(r"!\{([^}]*)\}")
DEFAULT_TIME_PREFIX = "!{timestamp:yyyy/MM/dd/HH}/"
RANDOM_STRING_CHARS = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789"))


def evaluate_prefix(template: str, when: dt.datetime, rng: np.random.Generator | None = None,
                    error_output_type: str = "") -> str:
    """The prefix of an object whose oldest record arrived at ``when`` (UTC). ``rng`` draws the
    11 characters of ``!{firehose:random-string}``."""
    return PrefixTemplate(template, error_output_type).evaluate(when, rng)


class PrefixTemplate:
    """A prefix template compiled once into a ``strftime`` format (one call per object)."""

    def __init__(self, template: str, error_output_type: str = ""):
        if "!{timestamp:" not in template:
            template = template + DEFAULT_TIME_PREFIX
        parts, last = [], 0
        for m in _EXPR.finditer(template):
            parts.append(template[last:m.start()].replace("%", "%%"))
            expr = m.group(1)
            if expr.startswith("timestamp:"):
                parts.append(_java_to_strftime(expr[len("timestamp:"):]))
            elif expr == "firehose:error-output-type":
                parts.append(error_output_type.replace("%", "%%"))
            elif expr == "firehose:random-string":
                parts.append("\x01")  # filled per object
            else:
                raise ValueError(f"unknown prefix expression !{{{expr}}}")
            last = m.end()
        parts.append(template[last:].replace("%", "%%"))
        self.format = "".join(parts)
        self.random = "\x01" in self.format

    def evaluate(self, when: dt.datetime, rng: np.random.Generator | None = None) -> str:
        out = when.strftime(self.format)
        while self.random and "\x01" in out:
            out = out.replace("\x01", "".join((rng or np.random.default_rng(0)).choice(RANDOM_STRING_CHARS, 11)), 1)
        return out


def _java_to_strftime(fmt: str) -> str:
    """A Java ``DateTimeFormatter`` pattern (``yyyy``, ``MM``, ``dd``, ``HH``, ``mm``, ``ss``, quoted
    ``'literals'``) as a ``strftime`` format; other characters are kept as they are."""
    def repl(m: re.Match) -> str:
        tok = m.group(0)
        if tok == "%":
            return "%%"
        if tok.startswith("'"):
            return (tok[1:-1] if len(tok) > 2 else "'").replace("%", "%%")
        return _JAVA_TOKENS.get(tok, tok)

    return re.sub(r"'[^']*'|y+|M+|d+|H+|m+|s+|%", repl, fmt)


def object_name(stream: str, version: int, when: dt.datetime, object_uuid: str, extension: str = "") -> str:
    """``<stream>-<version>-YYYY-MM-dd-HH-MM-SS-<uuid><extension>`` for the oldest arrival ``when``."""
    return f"{stream}-{version}-{when:%Y-%m-%d-%H-%M-%S}-{object_uuid}{extension}"


def random_uuid(rng: np.random.Generator) -> str:
    """A version-4 UUID drawn from ``rng`` (deterministic under the scenario seed)."""
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


class UuidSource:
    """Version-4 UUIDs drawn from ``rng``, 256 at a time (one draw per 256 objects)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.pool: list[bytes] = []

    def __call__(self) -> str:
        if not self.pool:
            raw = self.rng.bytes(16 * 256)
            self.pool = [raw[i:i + 16] for i in range(16 * 255, -1, -16)]
        return str(uuid.UUID(bytes=self.pool.pop(), version=4))


def encode(frame: pd.DataFrame, fmt: str, compression: str, member: str = "data.json") -> bytes:
    """The bytes of one object holding ``frame``: JSON lines (``fmt="json"``; ISO-8601 UTC times
    with milliseconds; gzip, zip with one ``member`` or uncompressed) or Parquet (``fmt="parquet"``,
    codec gzip, snappy or none)."""
    if fmt == "parquet":
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False, compression=None if compression == "none" else compression)
        return buf.getvalue()
    out = frame.copy(deep=False)
    for c in out.columns:  # ISO-8601 strings in one vectorised step (much faster than per value)
        if isinstance(out[c].dtype, pd.DatetimeTZDtype) or out[c].dtype.kind == "M":
            utc = out[c].dt.tz_convert("UTC").dt.tz_localize(None) if out[c].dt.tz is not None else out[c]
            out[c] = np.char.add(np.datetime_as_string(utc.to_numpy().astype("datetime64[ms]"), unit="ms"), "Z")
    text = out.to_json(orient="records", lines=True) if len(out) else ""
    if text and not text.endswith("\n"):
        text += "\n"
    data = text.encode("utf-8")
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
        return buf.getvalue()
    if compression == "none":
        return data
    raise ValueError(f"cannot write JSON lines with {compression} compression")


def decode(data: bytes, key: str) -> pd.DataFrame:
    """Read back an object written by :func:`encode` (the format from the key's extension)."""
    if key.endswith(".parquet"):
        return pd.read_parquet(io.BytesIO(data))
    if key.endswith(".gz"):
        data = gzip.decompress(data)
    elif key.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            data = z.read(z.namelist()[0])
    if not data.strip():
        return pd.DataFrame()
    import pyarrow as pa
    import pyarrow.json as pj

    frame = pj.read_json(pa.BufferReader(data)).to_pandas()
    for c in ("event_time", "arrival_time"):
        if c in frame:
            frame[c] = pd.to_datetime(frame[c], utc=True, format="ISO8601")
    return frame


OBJECT_COLUMNS = ("key", "size_bytes", "compressed_bytes", "records", "first_event_time", "last_event_time",
                  "first_arrival_time", "delivery_time", "last_arrival_time", "bucket", "error_output_type",
                  "trigger", "sealed_time", "put_attempts", "file_bytes")
_TIME_COLUMNS = ("first_event_time", "last_event_time", "first_arrival_time", "delivery_time", "last_arrival_time",
                 "sealed_time")


class S3Store:
    """The objects of one bucket, in delivery order (times in s from the scenario start).

    ``root`` (optional): where real files go, ``<root>/<bucket>/<key>`` (local path or fsspec URL).
    ``listeners`` are called as ``listener(index, now)`` after each data object (not error
    objects) is stored. ``put_requests`` / ``get_requests`` count S3 requests for the bill.
    """

    def __init__(self, bucket: str, root: str | None = None):
        self.bucket = bucket
        self.root = root
        self.fs = None
        if root is not None:
            import fsspec

            try:
                self.fs, base = fsspec.core.url_to_fs(str(root))
            except (OSError, ValueError, ImportError) as exc:
                raise ScenarioError("firehose.s3.root", f"cannot open {root!r}: {exc}") from None
            self.base = base.rstrip("/")
        self.rows: dict[str, list] = {c: [] for c in OBJECT_COLUMNS}
        self.events: list[np.ndarray | None] = []  # per object: event times (s), when kept
        self.listeners: list[Callable[[int, float], None]] = []
        self.put_requests = 0
        self.get_requests = 0
        self._written: list[str] = []  # files this run wrote, and folders it created (for discard)
        self._created: list[str] = []
        self._known: set[str] = set()

    def __len__(self) -> int:
        return len(self.rows["key"])

    @property
    def writes_files(self) -> bool:
        return self.fs is not None

    def path(self, key: str) -> str:
        """Where the file of ``key`` is (in the store's filesystem): always below ``root``."""
        if key.startswith("/") or any(part in (".", "..") for part in key.split("/")):
            raise ValueError(f"object key {key!r} would leave the bucket's folder")
        return f"{self.base}/{self.bucket}/{key}"

    def put(self, meta: dict, now: float, body: bytes | None = None, events: np.ndarray | None = None) -> int:
        """Store one object delivered at ``now``: ``meta`` holds the :data:`OBJECT_COLUMNS` except
        ``delivery_time`` and ``file_bytes``; ``body`` is written when the store writes files.
        Returns the object's index."""
        file_bytes = None
        if self.fs is not None and body is not None:
            self.write(meta["key"], body)
            file_bytes = len(body)
        self.put_requests += 1
        for c in OBJECT_COLUMNS:
            self.rows[c].append(now if c == "delivery_time" else file_bytes if c == "file_bytes" else meta[c])
        self.events.append(events)
        index = len(self) - 1
        if not meta["error_output_type"]:
            for listener in self.listeners:
                listener(index, now)
        return index

    def write(self, key: str, body: bytes) -> None:
        """Write ``body`` as the file of ``key``. Raises :class:`~kinesim.errors.ScenarioError`
        (``firehose.s3.root``) when the root cannot be written."""
        path = self.path(key)
        try:
            self._make_folders(path.rsplit("/", 1)[0])
            self._written.append(path)
            with self.fs.open(path, "wb") as f:
                f.write(body)
        except OSError as exc:
            raise ScenarioError("firehose.s3.root", f"cannot write {path}: {exc.strerror or exc}") from None

    def _make_folders(self, folder: str) -> None:
        """Create ``folder`` and its missing parents below ``root``, noting the ones created."""
        if folder in self._known:
            return
        missing, f = [], folder
        while f.startswith(self.base + "/") and f not in self._known and not self.fs.exists(f):
            missing.append(f)
            f = f.rsplit("/", 1)[0]
        self.fs.makedirs(folder, exist_ok=True)
        self._created.extend(reversed(missing))
        self._known.add(folder)

    def discard(self) -> None:
        """Remove the files this store wrote and the folders it created (a run that failed or was
        interrupted leaves nothing half-written behind). Best effort: errors are ignored."""
        for path in reversed(self._written):
            try:
                self.fs.rm(path)
            except (OSError, FileNotFoundError):
                pass
        for folder in reversed(self._created):
            try:
                self.fs.rmdir(folder)
            except (OSError, FileNotFoundError):
                pass
        self._written, self._created, self._known = [], [], set()

    def read(self, key: str) -> pd.DataFrame:
        """The records of a written object as a DataFrame."""
        with self.fs.open(self.path(key), "rb") as f:
            return decode(f.read(), key)

    def column(self, name: str, index=None) -> np.ndarray:
        values = np.asarray(self.rows[name])
        return values if index is None else values[index]

    def byte_seconds(self, end: float) -> float:
        """Stored bytes × seconds from each object's delivery to ``end`` (for S3 storage cost)."""
        if not len(self):
            return 0.0
        size = np.asarray(self.rows["compressed_bytes"], dtype=float)
        return float(np.sum(size * np.maximum(0.0, end - np.asarray(self.rows["delivery_time"], dtype=float))))

    def frame(self, origin: pd.Timestamp) -> pd.DataFrame:
        """The ``objects`` trace: one row per object, times as UTC timestamps from ``origin``."""
        data = {}
        for c in OBJECT_COLUMNS:
            values = self.rows[c]
            if c in _TIME_COLUMNS:
                data[c] = origin + pd.to_timedelta(np.asarray(values, dtype=float), unit="s")
            elif c == "file_bytes":
                data[c] = pd.array([pd.NA if v is None else v for v in values], dtype="Int64")
            elif c in ("size_bytes", "compressed_bytes", "records", "put_attempts"):
                data[c] = np.asarray(values, dtype=np.int64)
            else:
                data[c] = pd.array(values, dtype=object) if values else pd.array([], dtype=object)
        return pd.DataFrame(data, columns=list(OBJECT_COLUMNS))


class TempFolder:
    """A local temporary folder (for real files before a run is saved), removed when the last
    reference to this object goes away or at interpreter exit."""

    def __init__(self, prefix: str = "kinesim-"):
        import shutil
        import tempfile
        import weakref
        from pathlib import Path

        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)
