"""Line formats: format strings, presets on generated lines, JSON lines, and errors that name the problem."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from logwarden.core.errors import BadLineError, LogWardenError
from logwarden.core.parsing.formats import PRESETS, FormatPreset, format_to_regex, get_format


def epoch(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_format_string_fields_and_greedy_content() -> None:
    fmt = get_format("<Date> <Time> <Level> <Component>: <Content>")
    record = fmt.parse("2024-01-02 10:00:00   WARN  app.db: pool: exhausted: 5\r\n", "x.log", 3)
    assert record.content == "pool: exhausted: 5"
    assert record.fields == {"Date": "2024-01-02", "Time": "10:00:00", "Level": "WARN", "Component": "app.db"}
    assert (record.source, record.line_no, record.timestamp, record.label) == ("x.log", 3, None, None)


def test_format_string_with_brackets_escaped_or_not() -> None:
    for spec in (r"\[<Time>\] \[<Level>\] <Content>", "[<Time>] [<Level>] <Content>"):
        record = get_format(spec).parse("[Sun Dec 04 04:47:44 2005] [error] mod_jk child in error state 6")
        assert record.fields == {"Time": "Sun Dec 04 04:47:44 2005", "Level": "error"}
        assert record.content == "mod_jk child in error state 6"


def test_format_string_timestamp_option() -> None:
    fmt = get_format("<Date> <Time> <Content>", timestamp="%Y-%m-%d %H:%M:%S")
    assert fmt.parse("2024-01-02 10:00:05 hello").timestamp == epoch(2024, 1, 2, 10, 0, 5)
    assert fmt.parse("2024-99-02 10:00:05 hello").timestamp is None  # unparsable time is not an error
    iso = get_format("<Stamp> <Content>", timestamp="iso", timestamp_fields="Stamp")
    assert iso.parse("2024-01-02T10:00:05+01:00 hi").timestamp == epoch(2024, 1, 2, 9, 0, 5)


def test_line_not_matching_is_a_bad_line_with_excerpt() -> None:
    fmt = get_format("<Date> <Time> <Level> <Component>: <Content>")
    with pytest.raises(BadLineError, match=r"does not match format .*'just words'"):
        fmt.parse("just words")


def test_content_may_be_empty_after_the_last_separator() -> None:
    assert get_format("<Level> <Content>").parse("INFO").content == ""


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("<Date> <Time> <Level>", "no <Content> field"),
        ("<Date> <Content", "unbalanced"),
        ("<Date> Content>", "unbalanced"),
        ("<Date> <Date> <Content>", "<Date> appears twice"),
        ("<Da te> <Content>", "field name"),
        ("hdfs2", "unknown format"),
        ("json?nope=1", "unknown json option"),
    ],
)
def test_bad_format_specs_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(LogWardenError, match=message):
        get_format(spec)


def test_label_and_timestamp_fields_must_exist() -> None:
    with pytest.raises(LogWardenError, match="label_field 'Label'"):
        get_format("<Level> <Content>", label_field="Label")
    with pytest.raises(LogWardenError, match="timestamp field"):
        get_format("<Level> <Content>", timestamp="epoch", timestamp_fields="When")


def test_hdfs_preset_on_generated_lines() -> None:
    fmt = get_format("hdfs")
    line = (
        "081109 203615 148 INFO dfs.DataNode$PacketResponder: "
        "PacketResponder 1 for block blk_-1608999687919862906 terminating\r\n"
    )
    record = fmt.parse(line)
    assert record.content == "PacketResponder 1 for block blk_-1608999687919862906 terminating"
    assert record.fields["Component"] == "dfs.DataNode$PacketResponder"
    assert record.timestamp == epoch(2008, 11, 9, 20, 36, 15)
    assert fmt.preset is PRESETS["hdfs"] and fmt.preset.session_key_regex == r"blk_-?\d+"
    assert fmt.spec == "hdfs" and fmt.label_field is None


def test_bgl_preset_labels_and_epoch() -> None:
    fmt = get_format("BGL")
    normal = fmt.parse(
        "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 "
        "R02-M1-N0-C:J12-U11 RAS KERNEL INFO instruction cache parity error corrected"
    )
    alert = fmt.parse(
        "KERNDTLB 1118536327 2005.06.11 R30-M0-N9-C:J16-U01 2005-06-11-17.32.07.581048 "
        "R30-M0-N9-C:J16-U01 RAS KERNEL FATAL data TLB error interrupt"
    )
    assert (normal.label, alert.label) == (0, 1)
    assert normal.timestamp == 1117838570.0
    assert alert.content == "data TLB error interrupt" and alert.fields["Node"] == "R30-M0-N9-C:J16-U01"
    assert fmt.label_field is not None and fmt.preset is not None and fmt.preset.session_window == "time:60"


def test_thunderbird_preset_with_and_without_pid_and_component() -> None:
    fmt = get_format("thunderbird")
    head = "- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228"
    with_pid = fmt.parse(f"{head} crond(pam_unix)[2915]: session closed for user root")
    assert (with_pid.fields["Component"], with_pid.fields["PID"]) == ("crond(pam_unix)", "2915")
    assert with_pid.content == "session closed for user root" and with_pid.label == 0
    no_pid = fmt.parse(f"{head} kernel: scsi0 : LSI Logic")
    assert no_pid.fields["Component"] == "kernel" and "PID" not in no_pid.fields
    assert no_pid.content == "scsi0 : LSI Logic"
    no_component = fmt.parse("VAPI 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 odd text")
    assert no_component.content == "odd text" and no_component.label == 1
    assert no_component.timestamp == 1131566461.0


def test_presets_are_frozen_plain_data() -> None:
    preset = PRESETS["hdfs"]
    assert isinstance(preset, FormatPreset)
    with pytest.raises(AttributeError):
        preset.name = "x"  # type: ignore[misc]


def test_json_lines_with_nested_fields() -> None:
    fmt = get_format(
        "json", message_field="log.message", timestamp_field="ts", label_field="meta.label", session_field="trace.id"
    )
    line = json.dumps(
        {
            "log": {"message": "user 7 logged in"},
            "ts": "2024-01-02T00:00:00Z",
            "meta": {"label": "anomaly"},
            "trace": {"id": "abc"},
        }
    )
    record = fmt.parse(line, "s", 1)
    assert record.content == "user 7 logged in"
    assert record.timestamp == epoch(2024, 1, 2)
    assert record.label == 1 and record.fields == {"trace.id": "abc"}
    assert fmt.session_field == "trace.id"
    assert get_format(fmt.spec).spec == fmt.spec  # the spec string rebuilds the same format


@pytest.mark.parametrize(
    ("value", "label"), [("-", 0), ("normal", 0), (0, 0), (False, 0), (1, 1), (True, 1), ("KERNDTLB", 1), ("", None)]
)
def test_json_label_values(value: object, label: int | None) -> None:
    fmt = get_format("json", label_field="label")
    assert fmt.parse(json.dumps({"message": "m", "label": value})).label == label


def test_json_epoch_and_missing_time() -> None:
    fmt = get_format("json", timestamp_field="t")
    assert fmt.parse('{"message": "m", "t": 1700000000}').timestamp == 1700000000.0
    assert fmt.parse('{"message": "m", "t": 1700000000123}').timestamp == pytest.approx(1700000000.123)
    assert fmt.parse('{"message": "m", "t": "not a time"}').timestamp is None
    assert fmt.parse('{"message": "m"}').timestamp is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not an object"),
        ('{"msg": "x"}', "no 'message' field"),
        ('{"message": null}', "no 'message' field"),
    ],
)
def test_json_bad_lines(line: str, message: str) -> None:
    with pytest.raises(BadLineError, match=message):
        get_format("json").parse(line)


def test_json_non_string_message_is_kept_as_json() -> None:
    assert get_format("json").parse('{"message": {"a": 1}}').content == '{"a": 1}'


def test_plain_format() -> None:
    record = get_format("plain").parse("anything at all: 1\r\n", "f", 2)
    assert (record.content, record.source, record.line_no) == ("anything at all: 1", "f", 2)


def test_format_to_regex_shape() -> None:
    regex = format_to_regex("<A> <B>: <Content>")
    assert regex == r"(?P<A>\S+)\s+(?P<B>.*?):(?:\s+|$)(?P<Content>.*)"


LOGHUB = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "loghub_2k" / "original"


def test_loghub_samples_parse_completely_when_present() -> None:
    """Every line of the real HDFS/BGL/Thunderbird 2k samples parses (checks nothing where CI has no data)."""
    for preset, system in (("hdfs", "HDFS"), ("bgl", "BGL"), ("thunderbird", "Thunderbird")):
        path = LOGHUB / system / f"{system}_2k.log"
        if not path.is_file():
            continue
        fmt = get_format(preset)
        lines = [line for line in path.read_bytes().decode("utf-8", "replace").split("\n") if line.strip()]
        assert len(lines) == 2000
        records = [fmt.parse(line) for line in lines]
        assert all(r.timestamp is not None and r.content for r in records)
        if fmt.label_field is not None:
            assert {r.label for r in records} <= {0, 1}


def test_times_false_skips_only_the_timestamp() -> None:
    line = "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865 terminating"
    fmt = get_format("hdfs")
    full, fast = fmt.parse(line, "s", 3), fmt.parse(line, "s", 3, times=False)
    assert full.timestamp is not None and fast.timestamp is None
    assert (fast.content, fast.fields, fast.source, fast.line_no) == (full.content, full.fields, "s", 3)
    obj = get_format("json?message=msg&timestamp=ts&session=sid")
    record = obj.parse(json.dumps({"msg": "hello", "ts": 1700000000, "sid": "a"}), times=False)
    assert (record.content, record.fields, record.timestamp) == ("hello", {"sid": "a"}, None)
