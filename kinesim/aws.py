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
