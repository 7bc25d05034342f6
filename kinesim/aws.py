"""The documented AWS numbers kinesim models, each with its source.

Every limit here is a default: a scenario may override the stream limits under ``stream.limits``.
Units: bytes, seconds, counts. The numbers were collected in ``shared/reference/aws-facts.md``.
"""
from __future__ import annotations

MiB = 1024 * 1024
KiB = 1024

#: Per-shard write limit, bytes/s (data blob + partition key).
#: Source: https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html
SHARD_WRITE_BYTES_PER_S = 1 * MiB
#: Per-shard write limit, records/s. Same source as above.
SHARD_WRITE_RECORDS_PER_S = 1000
#: Per-shard shared read limit, bytes/s, across all GetRecords consumers. Same source.
SHARD_READ_BYTES_PER_S = 2 * MiB
#: GetRecords calls per second per shard, shared by all consumers.
#: Source: https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html
SHARD_READ_CALLS_PER_S = 5
#: GetRecords ``Limit`` maximum and default (records per call). Same source.
GET_RECORDS_MAX_RECORDS = 10_000
#: Bytes one GetRecords call may return; after a call returns this much, calls in the next
#: 5 s are throttled (2 MiB/s averaged). Same source.
GET_RECORDS_MAX_BYTES = 10 * MiB
#: Records per PutRecords request.
#: Source: https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html
PUT_RECORDS_MAX_RECORDS = 500
#: Bytes per PutRecords request (data + partition keys). The classic limit, still in the SDK docs
#: and the KPL's CollectionMaxSize (5,242,880); the current API allows 10 MiB, so it is configurable.
#: Sources: API_PutRecords.html (above); https://github.com/awslabs/amazon-kinesis-producer
#: (default_config.properties).
PUT_RECORDS_MAX_BYTES = 5 * MiB
#: Maximum record size (data blob + partition key), default.
#: Source: https://docs.aws.amazon.com/streams/latest/dev/large-records.html
MAX_RECORD_SIZE = 1 * MiB
#: Partition key length, characters. Source: API_PutRecord.html.
PARTITION_KEY_MAX_CHARS = 256
#: Retention bounds and default, seconds.
#: Source: https://docs.aws.amazon.com/kinesis/latest/APIReference/API_IncreaseStreamRetentionPeriod.html
RETENTION_MIN_S = 24 * 3600
RETENTION_MAX_S = 8760 * 3600
RETENTION_DEFAULT_S = 24 * 3600
#: Shards per stream that UpdateShardCount allows by default.
#: Source: https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateShardCount.html
MAX_SHARDS_PER_STREAM = 10_000
#: The MD5 hash key space: open shards cover 0 .. 2**128 - 1.
#: Source: https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecord.html
HASH_KEY_SPACE = 2**128

#: KPL AggregationMaxSize (bytes of one aggregated Kinesis record).
#: Source: https://github.com/awslabs/amazon-kinesis-producer/blob/master/java/amazon-kinesis-producer-sample/default_config.properties
KPL_AGGREGATION_MAX_SIZE = 51_200
#: KPL RecordMaxBufferedTime default, seconds. Same source.
KPL_RECORD_MAX_BUFFERED_TIME_S = 0.1
#: KPL RecordTtl default, seconds. Same source.
KPL_RECORD_TTL_S = 30.0
#: Bytes the KPL aggregation format adds once per aggregated record: 4-byte magic number plus a
#: 16-byte MD5 checksum. Source: https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md
KPL_AGGREGATE_OVERHEAD = 20
#: Bytes the protobuf framing adds per user record inside an aggregate (field tags, lengths and the
#: partition-key index). An approximation of the same format (a few varint bytes per record).
KPL_RECORD_OVERHEAD = 6

#: KCL maxRecords default and idle time between reads (KCL 1.x), for reference.
#: Source: https://github.com/awslabs/amazon-kinesis-client (PollingConfig.java, KinesisClientLibConfiguration.java)
KCL_MAX_RECORDS = 10_000
KCL_IDLE_TIME_BETWEEN_READS_S = 1.0

#: Error and metric names, verbatim from the API and CloudWatch.
#: Source: https://docs.aws.amazon.com/streams/latest/dev/monitoring-with-cloudwatch.html
PROVISIONED_THROUGHPUT_EXCEEDED = "ProvisionedThroughputExceededException"
METRIC_NAMES = (
    "IncomingBytes",
    "IncomingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "GetRecords.IteratorAgeMilliseconds",
    "OutgoingBytes",
    "OutgoingRecords",
)

# ---------------------------------------------------------------- Firehose, S3, billing units
#: Firehose reading a Kinesis stream calls GetRecords once per second per shard, starting at
#: LATEST; its calls count against the shard's shared read limits (2023 developer guide).
#: Source: https://docs.aws.amazon.com/firehose/latest/dev/writing-with-kinesis-streams.html
FIREHOSE_GET_RECORDS_INTERVAL_S = 1.0
#: S3 buffering hints: SizeInMBs 1..128 MiB (default 5), IntervalInSeconds 0..900 s (default 300).
#: Source: https://docs.aws.amazon.com/firehose/latest/APIReference/API_BufferingHints.html
FIREHOSE_BUFFER_SIZE_MIN = 1 * MiB
FIREHOSE_BUFFER_SIZE_MAX = 128 * MiB
FIREHOSE_BUFFER_SIZE_DEFAULT = 5 * MiB
FIREHOSE_BUFFER_INTERVAL_MAX_S = 900.0
FIREHOSE_BUFFER_INTERVAL_DEFAULT_S = 300.0
#: Record format conversion (JSON to Parquet/ORC) needs SizeInMBs >= 64; the default becomes 128.
#: Source: https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html
FIREHOSE_CONVERSION_BUFFER_MIN = 64 * MiB
FIREHOSE_CONVERSION_BUFFER_DEFAULT = 128 * MiB
#: Lambda transformation buffer: 0.2..3 MB, default 1 MB; BufferIntervalInSeconds default 60.
#: Source: https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html
FIREHOSE_LAMBDA_BUFFER_MIN = 200 * 1000
FIREHOSE_LAMBDA_BUFFER_MAX = 3 * 1000 * 1000
FIREHOSE_LAMBDA_BUFFER_DEFAULT = 1 * MiB
FIREHOSE_LAMBDA_INTERVAL_DEFAULT_S = 60.0
#: Outstanding Lambda invocations per shard for an S3 destination.
#: Source: https://docs.aws.amazon.com/firehose/latest/dev/limits.html
FIREHOSE_LAMBDA_INVOCATIONS_PER_SHARD = 5
#: S3 delivery is retried for up to 24 h; after that the data is lost.
#: Source: https://docs.aws.amazon.com/firehose/latest/dev/basic-deliver.html
FIREHOSE_S3_RETRY_DURATION_S = 24 * 3600.0
#: The object name's stream version starts at 1 and grows with each configuration change.
#: Source: https://docs.aws.amazon.com/firehose/latest/dev/basic-deliver.html
FIREHOSE_STREAM_VERSION = 1
#: Firehose bills ingestion per record rounded up to the next 5 KB (3 KB -> 5 KB, 12 KB -> 15 KB).
#: Source: https://aws.amazon.com/firehose/pricing/
FIREHOSE_BILLING_INCREMENT = 5 * KiB
#: Kinesis PUT payload units: each Kinesis record is billed in 25 KB chunks (5 KB -> 1 unit,
#: 45 KB -> 2 units). Source: https://aws.amazon.com/kinesis/data-streams/pricing/
PUT_PAYLOAD_UNIT_BYTES = 25 * KiB
#: On-demand streams bill data in and out per GB with each record rounded up to the nearest 1 KB.
#: Source: https://aws.amazon.com/kinesis/data-streams/pricing/
ON_DEMAND_BILLING_INCREMENT = 1 * KiB

# ---------------------------------------------------------------- resharding and capacity modes
#: UpdateShardCount: at most this many scalings per stream in a rolling 24 h (the older text said 2).
#: Source: https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateShardCount.html
UPDATE_SHARD_COUNT_PER_24H = 10
#: The rolling window of that limit, seconds. Same source.
UPDATE_SHARD_COUNT_WINDOW_S = 24 * 3600
#: AWS error names of refused control-plane calls, verbatim. Sources: API_SplitShard.html,
#: API_MergeShards.html, API_UpdateShardCount.html (Errors sections).
LIMIT_EXCEEDED = "LimitExceededException"
RESOURCE_IN_USE = "ResourceInUseException"
INVALID_ARGUMENT = "InvalidArgumentException"
RESOURCE_NOT_FOUND = "ResourceNotFoundException"
#: Open shards of a new on-demand stream: 4 MB/s write and 8 MB/s read, i.e. four shards' worth.
#: Source: https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html
ON_DEMAND_INITIAL_SHARDS = 4
#: On-demand mode splits a shard whose incoming traffic exceeds 500 KB/s, within 15 minutes, at the
#: middle of its hash key range. Source (2023 guide): https://github.com/awsdocs/amazon-kinesis-data-streams-developer-guide/blob/master/doc_source/how-do-i-size-a-stream.md
ON_DEMAND_SPLIT_BYTES_PER_S = 500 * KiB
ON_DEMAND_SPLIT_DELAY_S = 15 * 60
#: KCL parentShardPollIntervalMillis: how often a worker waiting on a child shard checks whether
#: its parents are finished (KCL 1.x KinesisClientLibConfiguration, KCL 2.x CoordinatorConfig).
#: Source: https://github.com/awslabs/amazon-kinesis-client
KCL_PARENT_SHARD_POLL_INTERVAL_S = 10.0
