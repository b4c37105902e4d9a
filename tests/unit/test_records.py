"""The JSONL record format (lb_apps.records): version 2 written, versions 1 and 2 read, fields
per kind and version, one-line errors naming the file and line."""
import json

import pytest

from lb_apps.loadgen import workload as wl
from lb_apps.records import (FORMAT_VERSION, LOADGEN_FIELDS, READABLE_VERSIONS,
                             RecordFormatError, check_record, encode_record, read_records)


def loadgen_record(**changes):
    record = wl.build_record("h1-1", "h1", 1.0, 1.001, 1.01, 200, 100, "b1", None, "GET", "/",
                             "new", None, pool_wait=0.0005, connect=0.0002)
    record.update(changes)
    return record


def test_version_2_is_written_with_pool_wait():
    assert FORMAT_VERSION == 2 and READABLE_VERSIONS == (1, 2)
    record = loadgen_record()
    assert record["v"] == 2 and record["pool_wait"] == 0.0005 and record["connect"] == 0.0002
    assert set(LOADGEN_FIELDS) <= set(record)
    check_record(record, "loadgen")
    with pytest.raises(RecordFormatError, match=r"lacks fields \['pool_wait', 'connect'\]"):
        check_record({k: v for k, v in record.items() if k not in ("pool_wait", "connect")},
                     "loadgen")


def test_version_1_records_without_pool_wait_are_still_read(tmp_path):
    v1 = {k: v for k, v in loadgen_record(v=1).items() if k not in ("pool_wait", "connect")}
    path = tmp_path / "old.jsonl"
    path.write_text(encode_record(v1) + encode_record(loadgen_record()))
    old, new = read_records(str(path), "loadgen")
    assert old["v"] == 1 and "pool_wait" not in old and new["pool_wait"] == 0.0005
    assert read_records(str(path)) == [old, new]
    summary = wl.summarize([old, new], 1.0)
    assert summary["sent"] == 2 and summary["pool_waited"] == 1


@pytest.mark.parametrize("version", [0, 3, "2", True, None])
def test_unknown_versions_are_refused_with_the_line(tmp_path, version):
    path = tmp_path / "bad.jsonl"
    path.write_text(encode_record(loadgen_record()) + json.dumps(loadgen_record(v=version))
                    + "\n")
    for kind in ("loadgen", None):
        with pytest.raises(RecordFormatError) as info:
            read_records(str(path), kind)
        assert str(info.value).startswith(f"{path}:2: record field 'v'")
        assert "1, 2" in str(info.value)
