"""S3 objects in Firehose's key layout, and real files that pandas and DuckDB read.

Keys (https://docs.aws.amazon.com/firehose/latest/dev/basic-deliver.html, s3-prefixes.html):
``<prefix>YYYY/MM/dd/HH/<stream>-<version>-YYYY-MM-dd-HH-MM-SS-<uuid>``, in UTC, from the
approximate arrival time of the oldest record in the object.
"""
from __future__ import annotations

import datetime as dt
import gc
import os
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import kinesim
from kinesim.s3 import decode, encode, evaluate_prefix, object_name

UTC = dt.timezone.utc
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


# ------------------------------------------------------------------ key names
@pytest.mark.parametrize("when, prefix, expected", [
    (dt.datetime(2026, 1, 1, 0, 59, 59, 999000, tzinfo=UTC), "raw/", "raw/2026/01/01/00/"),
    (dt.datetime(2026, 1, 1, 1, 0, 0, tzinfo=UTC), "raw/", "raw/2026/01/01/01/"),
    (dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), "", "2026/12/31/23/"),
    (dt.datetime(2027, 1, 1, 0, 0, 0, tzinfo=UTC), "", "2027/01/01/00/"),
    (dt.datetime(2028, 2, 29, 13, 5, 0, tzinfo=UTC), "year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/",
     "year=2028/month=02/day=29/"),
    (dt.datetime(2026, 7, 4, 9, 30, 0, tzinfo=UTC), "dt=!{timestamp:yyyy'-'MM'-'dd}/h=!{timestamp:HH}/", "dt=2026-07-04/h=09/"),
])
def test_prefixes_follow_firehose(when, prefix, expected):
    assert evaluate_prefix(prefix, when) == expected


def test_error_prefix_and_random_string():
    when = dt.datetime(2026, 3, 1, 17, 0, 0, tzinfo=UTC)
    assert evaluate_prefix("!{firehose:error-output-type}/", when, error_output_type="processing-failed") == \
        "processing-failed/2026/03/01/17/"
    key = evaluate_prefix("x/!{firehose:random-string}/", when, np.random.default_rng(3))
    assert re.fullmatch(r"x/[a-z0-9]{11}/2026/03/01/17/", key)


def test_object_name():
    when = dt.datetime(2026, 1, 1, 23, 59, 58, 700000, tzinfo=UTC)
    assert object_name("to-lake", 1, when, "3f1c", ".gz") == "to-lake-1-2026-01-01-23-59-58-3f1c.gz"


def test_keys_of_a_run_across_midnight_of_new_year():
    """Objects delivered around 2027-01-01T00:00Z: each key's prefix and name use the UTC time of
    the oldest record's arrival, so the objects of the last minute of 2026 land under 2026/12/31/23/."""
    results = kinesim.simulate({
        "name": "new-year", "duration": "3min", "seed": 1, "start_time": "2026-12-31T23:58:30Z",
        "stream": {"shards": 2},
        "fleets": [{"name": "f", "sensors": 50, "rate": "1/s", "record_size": "300B"}],
        "firehose": {"name": "to-lake", "buffer": {"size": "1MiB", "interval": "20s"},
                     "compression": "gzip", "s3": {"bucket": "sensor-lake", "prefix": "raw/"}},
    })
    objects = results.objects
    assert len(objects) >= 8
    pattern = re.compile(r"raw/(\d{4})/(\d{2})/(\d{2})/(\d{2})/to-lake-1-(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-"
                         + UUID + r"\.gz")
    hours = set()
    for key, first in zip(objects["key"], objects["first_arrival_time"]):
        m = pattern.fullmatch(key)
        assert m, key
        assert m.group(1, 2, 3, 4) == (f"{first.year:04d}", f"{first.month:02d}", f"{first.day:02d}", f"{first.hour:02d}")
        assert m.group(5, 6, 7, 8, 9, 10) == tuple(first.strftime("%Y %m %d %H %M %S").split())
        hours.add(m.group(1, 2, 3, 4))
    assert hours == {("2026", "12", "31", "23"), ("2027", "01", "01", "00")}
    assert objects["key"].is_unique


# ------------------------------------------------------------------ real files
def lake_run(tmp_path, compression="gzip", conversion="none", root=None, **extra):
    s3 = {"bucket": "sensor-lake", "prefix": "raw/", "write_files": True}
    if root is not None:
        s3["root"] = root
    buffer = {"size": "64MiB" if conversion == "parquet" else "1MiB", "interval": "10s"}
    return kinesim.simulate({
        "name": "files", "duration": "2min", "seed": 4, "stream": {"shards": 2},
        "fleets": [{"name": "meters", "sensors": 80, "rate": "2/s", "record_size": "300B"},
                   {"name": "vib", "sensors": 10, "rate": "5/s", "record_size": "200B", "producer": {"aggregation": True}}],
        "firehose": {"name": "to-lake", "buffer": buffer, "compression": compression, "format_conversion": conversion,
                     "s3": s3},
        "trace": {"records": "all"}, **extra,
    })


def identities(frame: pd.DataFrame) -> set:
    return set(zip(frame["fleet"].astype(str), frame["sensor"].astype(int), frame["SequenceNumber"].astype(int),
                   frame["SubSequenceNumber"].astype(int)))


def test_written_files_hold_exactly_the_records_of_objects(tmp_path):
    results = lake_run(tmp_path)
    objects = results.objects
    root = results.s3_root
    assert root is not None and len(objects) > 5
    files = {}
    for key, n, file_bytes in zip(objects["key"], objects["records"], objects["file_bytes"]):
        path = f"{root}/sensor-lake/{key}"
        frame = pd.read_json(path, lines=True, compression="gzip")
        assert len(frame) == n
        with open(path, "rb") as f:
            assert len(f.read()) == file_bytes
        files[key] = frame
    # the same counts through DuckDB, over the whole prefix
    con = duckdb.connect()
    counts = con.execute(f"SELECT filename, count(*) AS n FROM read_json_auto('{root}/sensor-lake/raw/*/*/*/*/*.gz', "
                         "filename=true) GROUP BY filename").df()
    by_key = dict(zip(counts["filename"].str.split("/sensor-lake/").str[1], counts["n"]))
    assert by_key == dict(zip(objects["key"], objects["records"]))
    # the files hold exactly the records the records trace shows as delivered
    written = pd.concat(files.values(), ignore_index=True)
    rec = results.records
    delivered = rec[rec["delivered_time"].notna()]
    assert len(written) == len(delivered) == results["firehose_records_delivered"]
    assert identities(written) == identities(delivered)
    # event times survive the round trip (ms precision)
    merged = written.merge(delivered, on=["fleet", "sensor", "SequenceNumber", "SubSequenceNumber"], suffixes=("", "_t"))
    err = (merged["event_time"] - merged["event_time_t"]).dt.total_seconds().abs()
    assert err.max() < 1e-3
    # each object's event-time span matches its file
    first = pd.to_datetime(objects["first_event_time"])
    for (key, frame), t0 in zip(files.items(), first):
        assert abs((frame["event_time"].min() - t0).total_seconds()) < 1e-3


def test_parquet_conversion_files_are_read_by_duckdb(tmp_path):
    results = lake_run(tmp_path, compression="snappy", conversion="parquet")
    objects = results.objects
    assert objects["key"].str.endswith(".parquet").all()
    con = duckdb.connect()
    total = con.execute(f"SELECT count(*) FROM read_parquet('{results.s3_root}/sensor-lake/raw/**/*.parquet')").fetchone()[0]
    assert total == objects["records"].sum() == results["firehose_records_delivered"]
    one = pd.read_parquet(f"{results.s3_root}/sensor-lake/{objects['key'].iloc[0]}")
    assert len(one) == objects["records"].iloc[0]
    assert str(one["event_time"].dtype).startswith("datetime64")


def test_an_fsspec_url_root_and_zip_compression():
    import fsspec

    root = "memory://kinesim-test-lake"
    results = lake_run(None, compression="zip", root=root)
    fs = fsspec.filesystem("memory")
    objects = results.objects
    assert objects["key"].str.endswith(".zip").all()
    for key, n in zip(objects["key"], objects["records"]):
        with fs.open(f"/kinesim-test-lake/sensor-lake/{key}", "rb") as f:
            data = f.read()
        assert len(decode(data, key)) == n
        assert len(pd.read_json(fsspec.open(f"{root}/sensor-lake/{key}", "rb").open(), lines=True, compression="zip")) == n
    fs.rm("/kinesim-test-lake", recursive=True)


def test_encode_decode_round_trip():
    frame = pd.DataFrame({"fleet": ["a", "b"], "sensor": [1, 2],
                          "event_time": pd.to_datetime(["2026-01-01T00:00:00.123Z", "2026-01-01T00:00:01Z"], utc=True, format="ISO8601"),
                          "arrival_time": pd.to_datetime(["2026-01-01T00:00:00.2Z", "2026-01-01T00:00:01.5Z"], utc=True, format="ISO8601")})
    for fmt, comp, ext in [("json", "none", ""), ("json", "gzip", ".gz"), ("json", "zip", ".zip"), ("parquet", "snappy", ".parquet")]:
        data = encode(frame, fmt, comp)
        assert data == encode(frame, fmt, comp)  # deterministic bytes
        back = decode(data, f"k{ext}")
        assert back["sensor"].tolist() == [1, 2]
        assert (back["event_time"] == frame["event_time"]).all()


def test_save_copies_the_files_into_the_results_folder(tmp_path):
    results = lake_run(tmp_path)
    temp_root = results.s3_root
    out = results.save(tmp_path / "out")
    keys = sorted(results.objects["key"])
    saved = sorted(str(p.relative_to(out / "s3" / "sensor-lake")) for p in (out / "s3" / "sensor-lake" / "raw").rglob("*.gz"))
    assert saved == keys
    saved_objects = pd.read_parquet(out / "objects.parquet")
    assert saved_objects["key"].tolist() == results.objects["key"].tolist()
    # saving again (replacing the folder) works, and the temporary folder goes with the Results
    results.save(tmp_path / "out")
    assert len(list((out / "s3").rglob("*.gz"))) == len(keys)
    import os

    assert os.path.isdir(temp_root)
    del results
    gc.collect()
    assert not os.path.exists(temp_root)


def test_every_run_has_objects_jobs_and_cost_traces():
    results = kinesim.simulate({"name": "plain", "duration": "5s", "fleets": [{"name": "f", "sensors": 5, "rate": "1/s"}]})
    assert list(results.objects.columns[:8]) == ["key", "size_bytes", "compressed_bytes", "records", "first_event_time",
                                                 "last_event_time", "first_arrival_time", "delivery_time"]
    assert len(results.objects) == 0 and len(results.jobs) == 0
    assert list(results.jobs.columns[:8]) == ["job", "start_time", "end_time", "objects", "bytes", "records",
                                              "oldest_event_time", "newest_event_time"]
    assert results.s3_root is None
    assert results["cost_usd"] == pytest.approx(results["cost_usd.kinesis"]) and results["cost_usd.kinesis"] > 0


LAKE_SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "lake-hourly-emr.yaml"


@pytest.mark.parametrize("where, value, expected", [
    ("firehose.s3.prefix", "../../escape/", "'..' path segments"),
    ("firehose.s3.prefix", "raw/./x/", "'..' path segments"),
    ("firehose.s3.prefix", "/abs/", "must not start with '/'"),
    ("firehose.s3.error_prefix", "../err/", "'..' path segments"),
    ("emr.output_prefix", "../../out/", "'..' path segments"),
    ("firehose.s3.root", "nosuchproto://x", "Protocol not known"),
])
def test_keys_and_roots_that_would_write_outside_the_bucket_folder_are_refused(where, value, expected):
    from kinesim.errors import ScenarioError

    with pytest.raises(ScenarioError) as exc:
        kinesim.load_scenario(LAKE_SCENARIO, {where: value})
    assert exc.value.path == where and expected in exc.value.message


def test_a_root_that_cannot_be_written_is_a_one_line_error_naming_it(tmp_path, capsys):
    from kinesim import cli

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", str(LAKE_SCENARIO), "-q", "-o", str(tmp_path / "out"),
                  "--set", "duration=10min", "--set", f"firehose.s3.root={blocker}/inside"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith(f"error: {LAKE_SCENARIO}: firehose.s3.root: cannot write")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_the_store_never_maps_a_key_outside_its_folder(tmp_path):
    from kinesim.s3 import S3Store

    store = S3Store("b", str(tmp_path))
    assert store.path("raw/2026/x.gz").endswith("/b/raw/2026/x.gz")
    with pytest.raises(ValueError):
        store.path("raw/../../x.gz")


def test_an_interrupted_run_leaves_no_files_in_the_root(tmp_path):
    """Ctrl-C (or any failure) in the middle of a run: the objects already written under
    ``firehose.s3.root`` and the folders the run created are removed; the root itself stays."""
    root = tmp_path / "lake"
    root.mkdir()
    (root / "mine.txt").write_text("the user's own file")
    written = []

    def interrupt(done, duration):
        written.append(sum(len(files) for _, _, files in os.walk(root)))
        if done >= 90:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        kinesim.simulate({
            "name": "files", "duration": "2min", "seed": 4, "stream": {"shards": 1},
            "fleets": [{"name": "meters", "sensors": 80, "rate": "2/s", "record_size": "300B"}],
            "firehose": {"name": "to-lake", "buffer": {"size": "1MiB", "interval": "10s"},
                         "s3": {"bucket": "sensor-lake", "prefix": "raw/", "write_files": True, "root": str(root)}},
        }, progress=interrupt)
    assert max(written) > 3  # objects had been written before the interrupt
    assert sorted(p.name for p in root.iterdir()) == ["mine.txt"]
