"""The scenario schema of the Firehose → S3 → EMR path (pydantic): ``firehose:`` and ``emr:``.

Part of :mod:`kinesim.scenario` (which imports :class:`Firehose` and :class:`Emr`), kept apart so the
schema file stays small; like it, this is the only place where the defaults of these features live.
Units: seconds, bytes, bytes/s. What the models mean is in :mod:`kinesim.firehose`,
:mod:`kinesim.s3` and :mod:`kinesim.emr`; AWS numbers come from :mod:`kinesim.aws`.
"""
from __future__ import annotations

import re
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from kinesim import aws
from kinesim.units import format_bytes, parse_byte_rate

from kinesim.schema_types import no_bool, Bytes, Model, PositiveSeconds, Seconds, positive as _positive, refuse as _refuse


def _bytes_between(lo: int, hi: int):
    def check(v: int) -> int:
        if not lo <= v <= hi:
            raise ValueError(f"must be between {format_bytes(lo)} and {format_bytes(hi)}, got {format_bytes(v)}")
        return v

    return AfterValidator(check)


def _seconds_at_most(hi: float):
    return AfterValidator(lambda v: _refuse(v > hi, f"must be at most {hi:g}s, got {v:g}s", v))


Share = Annotated[float, Field(ge=0, le=1)]


class FirehoseBuffer(Model):
    """S3 buffering hints: whichever of ``size`` (bytes, measured before compression) and
    ``interval`` (s) is reached first triggers a delivery. AWS: 1-128 MiB, default 5 MiB; 0-900 s,
    default 300 s (https://docs.aws.amazon.com/firehose/latest/APIReference/API_BufferingHints.html).
    With ``format_conversion: parquet`` the default size is 128 MiB and at least 64 MiB is required."""

    size: Annotated[Bytes, _bytes_between(aws.FIREHOSE_BUFFER_SIZE_MIN, aws.FIREHOSE_BUFFER_SIZE_MAX)] = (
        aws.FIREHOSE_BUFFER_SIZE_DEFAULT
    )
    interval: Annotated[Seconds, _seconds_at_most(aws.FIREHOSE_BUFFER_INTERVAL_MAX_S)] = aws.FIREHOSE_BUFFER_INTERVAL_DEFAULT_S


#: Default compressed/raw size ratio per format: kinesim's typical values for JSON sensor
#: records (not AWS figures); set ``compression.ratio`` for your data.
COMPRESSION_RATIOS = {"gzip": 0.3, "zip": 0.3, "snappy": 0.5, "none": 1.0}


class Compression(Model):
    """S3 compression (CompressionFormat GZIP, ZIP, Snappy or UNCOMPRESSED, default UNCOMPRESSED,
    https://docs.aws.amazon.com/firehose/latest/APIReference/API_S3DestinationConfiguration.html);
    ``ratio`` = compressed bytes / raw bytes, default from :data:`COMPRESSION_RATIOS`."""

    format: Literal["gzip", "snappy", "zip", "none"] = "none"
    ratio: Annotated[float, Field(gt=0, le=1)] = 1.0

    @model_validator(mode="before")
    @classmethod
    def _default_ratio(cls, data):
        if isinstance(data, str):
            data = {"format": data}
        if isinstance(data, dict) and "ratio" not in data:
            data = {**data, "ratio": COMPRESSION_RATIOS.get(data.get("format", "none"), 1.0)}
        return data

    @model_validator(mode="after")
    def _none_is_one(self):
        if self.format == "none" and self.ratio != 1.0:
            raise ValueError(f"ratio must be 1 without compression (format none), got {self.ratio:g}")
        return self


class LambdaBuffer(Model):
    """The transformation's own buffer: 0.2-3 MB, default 1 MB; interval default 60 s
    (https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html)."""

    size: Annotated[Bytes, _bytes_between(aws.FIREHOSE_LAMBDA_BUFFER_MIN, aws.FIREHOSE_LAMBDA_BUFFER_MAX)] = (
        aws.FIREHOSE_LAMBDA_BUFFER_DEFAULT
    )
    interval: Annotated[Seconds, _seconds_at_most(aws.FIREHOSE_BUFFER_INTERVAL_MAX_S)] = aws.FIREHOSE_LAMBDA_INTERVAL_DEFAULT_S


class Transformation(Model):
    """A Lambda transformation: an invocation takes ``per_invocation + per_record × records``;
    a ``failure_share`` of the records come back ``ProcessingFailed`` and go to the error prefix."""

    buffer: LambdaBuffer = LambdaBuffer()
    per_record: Seconds = 0.0
    per_invocation: Seconds = 0.0
    failure_share: Share = 0.0


class S3Destination(Model):
    """Where the objects go. ``prefix``/``error_prefix`` may hold ``!{timestamp:<Java format>}``,
    ``!{firehose:random-string}`` and (error prefix) ``!{firehose:error-output-type}``; a prefix
    without a timestamp expression gets ``YYYY/MM/dd/HH/`` appended, as Firehose does. With
    ``write_files`` the objects are written as real files under ``root`` (an fsspec URL or a local
    path; default: the run's output folder, ``<out>/s3/``) at ``<root>/<bucket>/<key>``. Each PUT
    takes ``put_latency`` and fails with probability ``failure_share``; a failed PUT is retried every
    ``retry_interval`` until ``retry_duration`` (AWS: 24 h, then the data is lost)."""

    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: Annotated[str, AfterValidator(lambda p: _check_prefix(p, error=False))] = ""
    error_prefix: Annotated[str, AfterValidator(lambda p: _check_prefix(p, error=True))] = "!{firehose:error-output-type}/"
    write_files: bool = False
    root: Annotated[Optional[str], AfterValidator(_check_root)] = None
    put_latency: Seconds = 0.1
    failure_share: Share = 0.0
    retry_interval: PositiveSeconds = 5.0
    retry_duration: Seconds = aws.FIREHOSE_S3_RETRY_DURATION_S


def _check_prefix(prefix: str, error: bool) -> str:
    """A prefix's ``!{namespace:value}`` expressions must be closed, known, and (timestamps) in the
    Java ``DateTimeFormatter`` patterns kinesim evaluates (:func:`_check_timestamp_format`)."""
    allowed = ["timestamp:<format>", "firehose:random-string"] + (["firehose:error-output-type"] if error else [])
    for expr in re.findall(r"!\{([^}]*)\}", prefix):
        ok = expr.startswith("timestamp:") or expr == "firehose:random-string" or (error and expr == "firehose:error-output-type")
        if not ok:
            raise ValueError(f"unknown expression !{{{expr}}}; allowed: {', '.join('!{' + a + '}' for a in allowed)}")
        if expr.startswith("timestamp:"):
            _check_timestamp_format(expr[len("timestamp:"):])
    rest = re.sub(r"!\{[^}]*\}", "", prefix)  # the text outside the closed expressions
    if "!{" in rest:
        rest = rest[rest.index("!{"):]
        raise ValueError(f"unclosed expression {rest[:40]!r} (missing '}}'); write !{{timestamp:yyyy/MM/dd}} or "
                         f"!{{firehose:random-string}}, got {prefix!r}")
    if len(prefix) > 512:
        raise ValueError(f"must be at most 512 characters, got {len(prefix)}")
    return _check_key_path(prefix)


#: Java ``DateTimeFormatter`` patterns that :class:`kinesim.s3.PrefixTemplate` evaluates (Firehose
#: takes any valid pattern, https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html; kinesim
#: models the numeric date and time fields that S3 key layouts use).
TIMESTAMP_PATTERNS = ("yyyy", "yy", "MM", "dd", "HH", "mm", "ss")


def _check_timestamp_format(fmt: str) -> None:
    """Refuse what Java would reject (an unclosed ``'``, the reserved ``# { } [ ]``) and pattern
    letters kinesim does not evaluate (they would be copied into keys as text). Other characters
    (``/ - _ . =``, spaces, digits) and ``'quoted text'`` are literal text, as in Java."""
    allowed = f"allowed: {', '.join(TIMESTAMP_PATTERNS)}, 'quoted text' and literal separators (/ - _ . = space)"
    hint = " (Java DateTimeFormatter patterns, not strftime: yyyy for %Y, MM for %m)" if "%" in fmt else ""
    if not re.search(r"[A-Za-z]", re.sub(r"'[^']*'", "", fmt)):
        raise ValueError(f"!{{timestamp:{fmt}}}: the format has no date or time pattern; {allowed}")
    for m in re.finditer(r"'[^']*'|'|([A-Za-z])\1*|.", fmt):
        tok = m.group(0)
        if tok == "'":
            raise ValueError(f"!{{timestamp:{fmt}}}: unclosed quote in the format; {allowed}")
        if tok in "#{[]":
            raise ValueError(f"!{{timestamp:{fmt}}}: {tok!r} is reserved in Java DateTimeFormatter patterns; {allowed}")
        if m.group(1) and tok not in TIMESTAMP_PATTERNS:
            raise ValueError(f"!{{timestamp:{fmt}}}: pattern {tok!r} is not supported{hint}; {allowed}")


def _check_key_path(prefix: str) -> str:
    """Object keys become file paths under ``s3.root``: a prefix must stay below it."""
    if prefix.startswith("/"):
        raise ValueError(f"must not start with '/' (keys are relative to the bucket), got {prefix!r}")
    if any(part in (".", "..") for part in prefix.split("/")):
        raise ValueError(f"must not hold '.' or '..' path segments (keys are files under s3.root), got {prefix!r}")
    return prefix


def _check_root(root: str | None) -> str | None:
    """``s3.root`` must name a filesystem fsspec knows and can load (e.g. ``s3://`` needs s3fs)."""
    if root is None:
        return root
    import fsspec

    protocol = fsspec.utils.get_protocol(root)
    try:
        fsspec.get_filesystem_class(protocol)
    except (ValueError, ImportError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot be written: {reason} (a local folder, or an fsspec URL whose package "
                         "is installed, e.g. memory://, file://)") from None
    return root


class Firehose(Model):
    """A delivery stream reading the Kinesis stream (:mod:`kinesim.firehose`) into S3."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_.-]{1,64}$")
    buffer: FirehoseBuffer = FirehoseBuffer()
    compression: Compression = Compression()
    format_conversion: Literal["none", "parquet"] = "none"
    transformation: Optional[Transformation] = None
    s3: S3Destination

    @model_validator(mode="before")
    @classmethod
    def _conversion_buffer(cls, data):
        if isinstance(data, dict) and data.get("format_conversion") == "parquet":
            buffer = data.get("buffer") or {}
            if isinstance(buffer, dict) and "size" not in buffer:
                data = {**data, "buffer": {**buffer, "size": aws.FIREHOSE_CONVERSION_BUFFER_DEFAULT}}
        return data


class EmrSchedule(Model):
    """When jobs run: ``every`` seconds (``schedule: 1h``) or after each ``every_objects`` new objects."""

    every: Optional[PositiveSeconds] = None
    every_objects: Optional[Annotated[int, BeforeValidator(no_bool), Field(ge=1)]] = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data):
        return data if isinstance(data, dict) else {"every": data}

    @model_validator(mode="after")
    def _exactly_one(self):
        if (self.every is None) == (self.every_objects is None):
            raise ValueError("must be a duration (1h) or {every_objects: N}")
        return self


class InstancePrice(Model):
    """Hourly price of one instance (USD): EC2 on-demand plus the EMR fee."""

    ec2_per_hour: Annotated[float, Field(ge=0)]
    emr_per_hour: Annotated[float, Field(ge=0)]


class Emr(Model):
    """Batch jobs over the S3 objects (:mod:`kinesim.emr`). A job reads the objects delivered since
    the previous job and runs ``per_object_overhead × objects + bytes / (nodes × throughput_per_node)``
    (bytes uncompressed); a cluster is started per job (``startup`` first) or ``long_running``.
    ``instance_type`` prices the nodes from ``kinesim/prices.yaml`` unless ``instance_price`` is given."""

    schedule: EmrSchedule = EmrSchedule(every=3600.0)
    startup: Seconds = 420.0
    long_running: bool = False
    nodes: Annotated[int, BeforeValidator(no_bool), Field(ge=1, le=10_000)] = 4
    throughput_per_node: Annotated[float, BeforeValidator(parse_byte_rate), AfterValidator(_positive)] = 50.0 * aws.MiB
    per_object_overhead: Seconds = 0.2
    instance_type: str = "m5.xlarge"
    instance_price: Optional[InstancePrice] = None
    output_prefix: Annotated[str, AfterValidator(_check_key_path)] = "emr-output/"
