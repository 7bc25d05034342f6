"""``kinesim schema``: a JSON Schema (draft 2020-12) that accepts every bundled scenario, accepts
unit strings where the models hold numbers, and rejects unknown keys."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from kinesim import cli
from kinesim.loader import read_yaml

jsonschema = pytest.importorskip("jsonschema", reason="install the test extras: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parents[1]


def _as_json(value):
    """A YAML document as JSON would carry it (timestamps as strings, like an editor sees them)."""
    return json.loads(json.dumps(value, default=lambda o: o.isoformat() if isinstance(o, dt.datetime) else str(o)))


def test_schema_command_prints_a_valid_schema(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["schema"])
    assert exc.value.code == 0
    out, err = capsys.readouterr()
    assert err == ""
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"name", "duration", "fleets", "stream", "consumers", "expect"} <= set(schema["properties"])
    assert set(schema["required"]) == {"name", "duration", "fleets"}
    v = jsonschema.Draft202012Validator(schema)
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        data = _as_json(read_yaml(path.read_text(encoding="utf-8"), str(path)))
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in v.iter_errors(data)]
        assert errors == [], f"{path.name}: {errors[:3]}"
    # unit strings and numbers where the model stores seconds, bytes, events/s
    good = {"name": "x", "duration": "10min", "stream": {"retention": "48h", "limits": {"write_bytes_per_s": "1MiB"}},
            "fleets": [{"name": "f", "sensors": 10, "rate": "10/min", "record_size": "2KiB",
                        "producer": {"max_buffered_time": 0.1}}],
            "consumers": [{"name": "c", "processing_time": "1ms"}],
            "expect": [{"metric": "IncomingRecords", "shard": 0, "window": ["1min", "5min"], "mean_below": 1000},
                       {"metric": "throttle_rate", "approx": 0.1, "tolerance": "5%"}]}
    assert list(v.iter_errors(good)) == []
    bad = {**good, "stream": {"shardz": 4}}
    assert any("shardz" in e.message for e in v.iter_errors(bad))
    assert list(v.iter_errors({**good, "fleets": [{**good["fleets"][0], "arrival": "sometimes"}]}))
