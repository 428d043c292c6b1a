"""The history data contract: what loads, how it is normalised, and every way it can fail."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from decisioning.actions import Slot
from decisioning.channels import DEFAULT_COSTS, Channel
from decisioning.customer_view import CustomerState
from decisioning.errors import HistoryError
from decisioning.history import (
    CONTACT_COLUMNS,
    CUSTOMER_COLUMNS,
    EVENT_COLUMNS,
    SKIP_DUPLICATE,
    SKIP_UNKNOWN_CUSTOMER,
    History,
    load_history,
    load_table,
    replay_stream,
    write_history,
)
from decisioning.history_replay import CONTACT, EVENT
from decisioning.records import EventType

CUSTOMERS = """\
customer_id,signup_at,timezone,consent_email,consent_sms,consent_push,consent_whatsapp,segment,age
c1,2024-01-01T00:00:00Z,Europe/Paris,true,false,yes,no,gold,30
c2,2024-01-02T08:00:00,America/New_York,1,0,TRUE,No,silver,41
c3,2024-01-03,UTC,False,Yes,0,1,gold,25
"""
CONTACTS = """\
contact_id,customer_id,ts,channel,slot,send_at,objective,cost,propensity,decision_id,category
k1,c1,2024-02-01T09:00:00Z,email,now,,winback,0.001,0.25,d1,shoes
k2,c2,2024-02-01T09:00:00Z,sms,today_evening,2024-02-01T19:00:00Z,winback,0.05,0.5,d2,
k3,c3,2024-02-02T09:00:00Z,none,now,,winback,,0.9,d3,
"""
EVENTS = """\
event_id,customer_id,ts,type,channel,contact_id,value,category,anonymous_id
e1,c1,2024-02-01T10:00:00Z,open,email,k1,,,
e2,c1,2024-02-01T11:00:00Z,purchase,,,49.5,shoes,
e3,,2024-02-01T12:00:00Z,web_visit,,,,,anon7
e4,c2,2024-02-01T20:00:00Z,click,sms,k2,,,
"""


def write_dir(root: Path, **tables: str) -> Path:
    """A history directory with the valid tables above, some replaced by ``tables``."""
    texts = {"customers": CUSTOMERS, "contacts": CONTACTS, "events": EVENTS, **tables}
    root.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (root / f"{name}.csv").write_text(text)
    return root


def edit(text: str, line: int, old: str, new: str) -> str:
    """``text`` with ``old`` replaced by ``new`` on line ``line`` (0 = header, 1 = data row 1)."""
    lines = text.splitlines()
    assert old in lines[line], (old, lines[line])
    lines[line] = lines[line].replace(old, new, 1)
    return "\n".join(lines) + "\n"


def drop_column(text: str, *names: str) -> str:
    frame = pd.read_csv(pd.io.common.StringIO(text), dtype=str, keep_default_na=False)
    return frame.drop(columns=list(names)).to_csv(index=False)


BAD_INPUTS = [
    pytest.param(
        "customers",
        drop_column(CUSTOMERS, "timezone", "consent_sms"),
        r"customers\.csv, column 'timezone': missing required columns: timezone, consent_sms",
        id="customers-missing-columns",
    ),
    pytest.param(
        "contacts",
        drop_column(CONTACTS, "ts", "channel"),
        r"contacts\.csv, column 'ts': missing required columns: ts, channel \(found: contact_id",
        id="contacts-missing-columns",
    ),
    pytest.param(
        "events",
        drop_column(EVENTS, "type"),
        r"events\.csv, column 'type': missing required columns: type",
        id="events-missing-columns",
    ),
    pytest.param(
        "customers",
        edit(CUSTOMERS, 2, "2024-01-02T08:00:00", "yesterday"),
        r"customers\.csv, column 'signup_at', row 2: unparseable timestamp 'yesterday'",
        id="bad-signup-timestamp",
    ),
    pytest.param(
        "contacts",
        edit(CONTACTS, 3, "2024-02-02T09:00:00Z", "2024-13-45T09:00:00Z"),
        r"contacts\.csv, column 'ts', row 3: unparseable timestamp '2024-13-45T09:00:00Z'",
        id="bad-contact-timestamp",
    ),
    pytest.param(
        "contacts",
        edit(CONTACTS, 2, "2024-02-01T19:00:00Z", "tonight"),
        r"contacts\.csv, column 'send_at', row 2: unparseable timestamp 'tonight'",
        id="bad-send-at",
    ),
    pytest.param(
        "events",
        edit(EVENTS, 4, "2024-02-01T20:00:00Z", ""),
        r"events\.csv, column 'ts', row 4: empty ts",
        id="empty-event-timestamp",
    ),
    pytest.param(
        "contacts",
        edit(CONTACTS, 2, ",sms,", ",fax,"),
        r"contacts\.csv, column 'channel', row 2: unknown channel 'fax' \(expected one of: email",
        id="unknown-contact-channel",
    ),
    pytest.param(
        "events",
        edit(EVENTS, 1, ",email,", ",pigeon,"),
        r"events\.csv, column 'channel', row 1: unknown channel 'pigeon'",
        id="unknown-event-channel",
    ),
    pytest.param(
        "events",
        edit(EVENTS, 2, "purchase", "purchased"),
        r"events\.csv, column 'type', row 2: unknown event type 'purchased'",
        id="unknown-event-type",
    ),
    pytest.param(
        "contacts",
        edit(CONTACTS, 2, "today_evening", "midnight"),
        r"contacts\.csv, column 'slot', row 2: unknown slot 'midnight' \(expected one of: now",
        id="unknown-slot",
    ),
    pytest.param(
        "contacts",
        edit(CONTACTS, 1, ",0.25,", ",0,"),
        r"contacts\.csv, column 'propensity', row 1: propensity 0\.0 is outside \(0, 1\]",
        id="propensity-zero",
    ),
    pytest.param(
        "contacts",
        edit(CONTACTS, 3, ",0.9,", ",1.5,"),
        r"contacts\.csv, column 'propensity', row 3: propensity 1\.5 is outside",
        id="propensity-above-one",
    ),
    pytest.param(
        "contacts",
        edit(CONTACTS, 2, ",0.05,", ",-0.05,"),
        r"contacts\.csv, column 'cost', row 2: negative cost -0\.05",
        id="negative-cost",
    ),
    pytest.param(
        "contacts",
        edit(CONTACTS, 2, ",0.05,", ",five cents,"),
        r"contacts\.csv, column 'cost', row 2: not a number: 'five cents'",
        id="cost-not-a-number",
    ),
    pytest.param(
        "events",
        edit(EVENTS, 2, "49.5", "inf"),
        r"events\.csv, column 'value', row 2: not a finite number",
        id="infinite-value",
    ),
    pytest.param(
        "contacts",
        edit(CONTACTS, 3, "k3,", "k1,"),
        r"contacts\.csv, column 'contact_id', row 3: duplicate contact_id 'k1' in rows 1 and 3",
        id="duplicate-contact-id",
    ),
    pytest.param(
        "customers",
        edit(CUSTOMERS, 3, "c3,", "c2,"),
        r"customers\.csv, column 'customer_id', row 3: duplicate customer_id 'c2' in rows 2 and 3",
        id="duplicate-customer-id",
    ),
    pytest.param(
        "events",
        EVENTS + "e2,c1,2024-02-01T11:00:00Z,purchase,,,59.5,shoes,\n",
        r"events\.csv, column 'event_id', row 5: event_id 'e2' in rows 2 and 5 with different "
        r"content \(differs in: value\)",
        id="same-event-id-other-content",
    ),
    pytest.param(
        "contacts",
        edit(CONTACTS, 2, ",c2,", ",c9,"),
        r"contacts\.csv, column 'customer_id', row 2: unknown customer_id 'c9' \(not in .*customers",
        id="contact-of-unknown-customer",
    ),
    pytest.param(
        "events",
        edit(EVENTS, 4, ",c2,", ",c8,"),
        r"events\.csv, column 'customer_id', row 4: unknown customer_id 'c8'",
        id="event-of-unknown-customer",
    ),
    pytest.param(
        "events",
        edit(EVENTS, 3, "anon7", ""),
        r"events\.csv, column 'customer_id', row 3: event 'e3' has an empty customer_id and no "
        r"anonymous_id",
        id="event-of-nobody",
    ),
    pytest.param(
        "customers",
        edit(CUSTOMERS, 3, "UTC", "Mars/Olympus_Mons"),
        r"customers\.csv, column 'timezone', row 3: unknown timezone 'Mars/Olympus_Mons'",
        id="unknown-timezone",
    ),
    pytest.param(
        "customers",
        edit(CUSTOMERS, 2, ",TRUE,", ",maybe,"),
        r"customers\.csv, column 'consent_push', row 2: bad boolean 'maybe' \(expected true/false",
        id="bad-boolean",
    ),
    pytest.param(
        "customers",
        edit(CUSTOMERS, 1, ",true,", ",,"),
        r"customers\.csv, column 'consent_email', row 1: bad boolean ''",
        id="empty-boolean",
    ),
    pytest.param(
        "contacts",
        edit(CONTACTS, 2, "k2,", ","),
        r"contacts\.csv, column 'contact_id', row 2: empty contact_id",
        id="empty-contact-id",
    ),
]


@pytest.mark.parametrize(("table", "text", "message"), BAD_INPUTS)
def test_bad_input_names_file_column_and_row(
    tmp_path: Path, table: str, text: str, message: str
) -> None:
    folder = write_dir(tmp_path, **{table: text})
    with pytest.raises(HistoryError, match=message) as caught:
        load_history(folder)
    assert caught.value.file is not None and caught.value.file.endswith(f"{table}.csv")
    assert caught.value.column is not None


def test_error_counts_further_bad_rows(tmp_path: Path) -> None:
    text = edit(edit(CONTACTS, 1, ",email,", ",fax,"), 2, ",sms,", ",telex,")
    with pytest.raises(HistoryError, match=r"row 1: unknown channel 'fax'.*\(1 more rows"):
        load_history(write_dir(tmp_path, contacts=text))


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("both", r"both contacts\.csv and contacts\.parquet exist"),
        ("neither", r"no events table: expected events\.csv or events\.parquet"),
        ("empty", r"events\.csv: empty file"),
        ("missing-dir", r"not a directory"),
    ],
)
def test_table_files(tmp_path: Path, setup: str, message: str) -> None:
    folder = write_dir(tmp_path / "h")
    if setup == "both":
        pd.read_csv(folder / "contacts.csv").to_parquet(folder / "contacts.parquet")
    elif setup == "neither":
        (folder / "events.csv").unlink()
    elif setup == "empty":
        (folder / "events.csv").write_text("")
    else:
        folder = tmp_path / "nowhere"
    with pytest.raises(HistoryError, match=message):
        load_history(folder)


def test_frames_have_fixed_columns_and_dtypes(tmp_path: Path) -> None:
    history = load_history(write_dir(tmp_path))
    assert tuple(history.customers.columns) == (*CUSTOMER_COLUMNS, "segment", "age")
    assert tuple(history.contacts.columns) == CONTACT_COLUMNS
    assert tuple(history.events.columns) == EVENT_COLUMNS
    dtypes = {**history.customers.dtypes, **history.contacts.dtypes, **history.events.dtypes}
    for column in ("signup_at", "ts", "send_at"):
        assert str(dtypes[column]) == "datetime64[ns, UTC]"
    for column in ("consent_email", "consent_sms", "consent_push", "consent_whatsapp"):
        assert history.customers[column].dtype == bool
    for column in ("cost", "propensity", "value"):
        assert dtypes[column] == np.float64
    for column in ("customer_id", "contact_id", "event_id", "channel", "type", "slot"):
        assert pd.api.types.is_string_dtype(dtypes[column]), column
    assert history.customers["age"].dtype == np.int64
    assert history.customers["consent_whatsapp"].tolist() == [False, False, True]
    assert history.customers["consent_push"].tolist() == [True, True, False]


def test_naive_timestamps_are_utc(tmp_path: Path) -> None:
    contacts = edit(CONTACTS, 1, "2024-02-01T09:00:00Z", "2024-02-01T10:00:00+01:00")
    contacts = edit(contacts, 2, "2024-02-01T09:00:00Z", "2024-02-01 09:00:00")
    history = load_history(write_dir(tmp_path, contacts=contacts))
    expected = pd.Timestamp("2024-02-01T09:00:00", tz="UTC")
    assert history.contacts["ts"].iloc[0] == expected
    assert history.contacts["ts"].iloc[1] == expected
    assert history.customers["signup_at"].iloc[1] == pd.Timestamp("2024-01-02T08:00", tz="UTC")
    assert history.customers["signup_at"].iloc[2] == pd.Timestamp("2024-01-03", tz="UTC")


def typed_frames() -> dict[str, pd.DataFrame]:
    """The CSV tables above as a producer with typed columns would write them to Parquet."""
    frames = {
        name: pd.read_csv(pd.io.common.StringIO(text), dtype=str, keep_default_na=False)
        for name, text in (("customers", CUSTOMERS), ("contacts", CONTACTS), ("events", EVENTS))
    }
    customers = frames["customers"]
    customers["signup_at"] = pd.to_datetime(customers["signup_at"], utc=True, format="ISO8601")
    customers["signup_at"] = customers["signup_at"].dt.tz_convert("Europe/Paris")  # any zone
    for column in CUSTOMER_COLUMNS[3:]:
        customers[column] = customers[column].str.lower().isin(["true", "1", "yes"])
    customers["age"] = customers["age"].astype("int64")
    contacts = frames["contacts"]
    for column in ("ts", "send_at"):
        # naive Parquet timestamps, as many warehouses export them
        parsed = pd.to_datetime(contacts[column].replace("", None), utc=True)
        contacts[column] = parsed.dt.tz_convert(None)
    for column in ("cost", "propensity"):
        contacts[column] = pd.to_numeric(contacts[column].replace("", None)).astype("float64")
    events = frames["events"]
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    events["value"] = pd.to_numeric(events["value"].replace("", None)).astype("float64")
    return frames


def test_csv_and_parquet_give_identical_frames(tmp_path: Path) -> None:
    from_csv = load_history(write_dir(tmp_path / "csv"))
    parquet_dir = tmp_path / "parquet"
    parquet_dir.mkdir()
    for name, frame in typed_frames().items():
        frame.to_parquet(parquet_dir / f"{name}.parquet", index=False)
    from_parquet = load_history(parquet_dir)
    for table in ("customers", "contacts", "events"):
        pd.testing.assert_frame_equal(getattr(from_csv, table), getattr(from_parquet, table))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_history_round_trips(tmp_path: Path, fmt: str) -> None:
    events = EVENTS + "e5,c3,2024-02-03T08:00:00.123456789Z,purchase,,,12.25,,\n"
    history = load_history(write_dir(tmp_path / "in", events=events))
    written = write_history(history, tmp_path / "out", format=fmt)  # type: ignore[arg-type]
    assert {p.name for p in written.values()} == {f"{t}.{fmt}" for t in written}
    again = load_history(tmp_path / "out")
    for table in ("customers", "contacts", "events"):
        pd.testing.assert_frame_equal(getattr(history, table), getattr(again, table))
    assert again.events["ts"].iloc[-1].nanosecond == 789
    other = "parquet" if fmt == "csv" else "csv"
    with pytest.raises(HistoryError, match="ambiguous"):
        write_history(history, tmp_path / "out", format=other)  # type: ignore[arg-type]


def test_exact_duplicate_events_are_skipped_and_counted_in_strict_mode(tmp_path: Path) -> None:
    lines = EVENTS.splitlines()
    events = "\n".join([*lines, lines[1], lines[4], lines[1]]) + "\n"
    history = load_history(write_dir(tmp_path, events=events))
    assert history.events["event_id"].tolist() == ["e1", "e2", "e3", "e4"]
    assert history.report.rows_read["events"] == 7
    assert history.report.rows_kept["events"] == 4
    assert history.report.skipped == {"events": {SKIP_DUPLICATE: 3}}


def test_lenient_load_skips_unknown_customers_and_reports_them(tmp_path: Path) -> None:
    contacts = CONTACTS + "k4,c9,2024-02-03T09:00:00Z,push,now,,,,,,\n"
    contacts += "k5,c9,2024-02-04T09:00:00Z,push,now,,,,,,\n"
    events = EVENTS + "e5,c8,2024-02-01T12:00:00Z,app_open,,,,,\n"
    events += "e1,c1,2024-02-01T10:00:00Z,open,email,k1,,,\n"
    folder = write_dir(tmp_path, contacts=contacts, events=events)
    with pytest.raises(HistoryError, match="unknown customer_id 'c9'"):
        load_history(folder)
    history = load_history(folder, strict=False)
    report = history.report
    assert report.rows_read == {"customers": 3, "contacts": 5, "events": 6}
    assert report.rows_kept == {"customers": 3, "contacts": 3, "events": 4}
    assert report.skipped == {
        "contacts": {SKIP_UNKNOWN_CUSTOMER: 2},
        "events": {SKIP_UNKNOWN_CUSTOMER: 1, SKIP_DUPLICATE: 1},
    }
    assert report.rows_skipped == 4
    assert any("row 4, customer_id 'c9'" in w for w in report.warnings)
    assert "c9" not in set(history.contacts["customer_id"])
    assert "skipped: 1 duplicate_event, 1 unknown_customer" in report.summary()


def test_optional_columns_are_defaulted(tmp_path: Path) -> None:
    contacts = "contact_id,customer_id,ts,channel\nk1,c1,2024-02-01T09:00:00Z,email\n"
    events = "event_id,customer_id,ts,type\ne1,c1,2024-02-01T10:00:00Z,open\n"
    history = load_history(write_dir(tmp_path, contacts=contacts, events=events))
    contact = history.contacts.iloc[0]
    assert contact["slot"] == Slot.NOW.value
    assert contact["send_at"] == contact["ts"]
    assert math.isnan(contact["cost"]) and math.isnan(contact["propensity"])
    assert contact["objective"] == contact["decision_id"] == contact["category"] == ""
    event = history.events.iloc[0]
    assert event["channel"] == event["contact_id"] == event["anonymous_id"] == ""
    assert math.isnan(event["value"])


def test_event_channel_comes_from_its_contact(tmp_path: Path) -> None:
    events = (
        EVENTS + "e5,c2,2024-02-01T21:00:00Z,open,,k2,,,\ne6,c2,2024-02-01T22:00:00Z,open,,k7,,,\n"
    )
    history = load_history(write_dir(tmp_path, events=events))
    assert history.events["channel"].tolist()[-2:] == ["sms", ""]
    assert any("1 events name a contact_id that is not in" in w for w in history.report.warnings)


def test_contract_warnings_do_not_drop_rows(tmp_path: Path) -> None:
    contacts = edit(CONTACTS, 0, "category", "category,campaign_name")
    contacts = "\n".join(line + ",x" if i else line for i, line in enumerate(contacts.splitlines()))
    contacts = edit(contacts + "\n", 2, "2024-02-01T19:00:00Z", "2024-02-01T08:00:00Z")
    history = load_history(write_dir(tmp_path, contacts=contacts))
    assert len(history.contacts) == 3
    assert any(
        "ignored columns not in the contract: campaign_name" in w for w in history.report.warnings
    )
    assert any(
        "1 contacts have send_at before ts (first: row 2)" in w for w in history.report.warnings
    )


def test_attributes_keep_codes_as_text(tmp_path: Path) -> None:
    customers = edit(CUSTOMERS, 0, "segment,age", "segment,age,zip,score")
    rows = customers.splitlines()
    extras = [",02139,0.5", ",10001,", ",94105,2"]
    rows[1:] = [r + extra for r, extra in zip(rows[1:], extras, strict=True)]
    history = load_history(write_dir(tmp_path, customers="\n".join(rows) + "\n"))
    assert history.customers["zip"].tolist() == ["02139", "10001", "94105"]
    assert history.customers["score"].dtype == np.float64
    first = next(history.customer_records())
    assert first.attributes == {"segment": "gold", "age": 30, "zip": "02139", "score": 0.5}
    assert history.attribute_columns == ("segment", "age", "zip", "score")


def test_customer_records(tmp_path: Path) -> None:
    customers = list(load_history(write_dir(tmp_path)).customer_records())
    assert [c.customer_id for c in customers] == ["c1", "c2", "c3"]
    second = customers[1]
    assert second.signup_at == datetime(2024, 1, 2, 8, tzinfo=UTC)
    assert second.timezone == "America/New_York"
    assert second.consents == {
        Channel.EMAIL: True,
        Channel.SMS: False,
        Channel.PUSH: True,
        Channel.WHATSAPP: False,
    }
    assert second.attributes == {"segment": "silver", "age": 41}


def test_contact_and_event_records(tmp_path: Path) -> None:
    history = load_history(write_dir(tmp_path))
    contacts = list(history.contact_records())
    assert contacts[0].cost == 0.001 and contacts[0].category == "shoes"
    assert contacts[2].cost is None and contacts[2].channel is Channel.NONE
    assert contacts[1].sent_at == datetime(2024, 2, 1, 19, tzinfo=UTC)
    events = list(history.event_records())
    assert events[1].type is EventType.PURCHASE and events[1].value == 49.5
    assert events[2].customer_id == "" and events[2].anonymous_id == "anon7"
    assert events[2].channel is None


def test_from_frames_accepts_typed_producer_output() -> None:
    signup = datetime(2024, 1, 1, tzinfo=UTC)
    history = History.from_frames(
        customers=pd.DataFrame(
            {
                "customer_id": [1, 2],
                "signup_at": [signup, signup],
                "timezone": ["UTC", "Asia/Tokyo"],
                **{f"consent_{c}": [True, False] for c in ("email", "sms", "push", "whatsapp")},
            }
        ),
        contacts=pd.DataFrame(
            {
                "contact_id": ["k1"],
                "customer_id": [2],
                "ts": [datetime(2024, 2, 1, tzinfo=UTC)],
                "channel": [Channel.PUSH],
            }
        ),
        events=pd.DataFrame(
            {
                "event_id": ["e1"],
                "customer_id": [1],
                "ts": [datetime(2024, 2, 2, tzinfo=UTC)],
                "type": [EventType.APP_OPEN],
            }
        ),
    )
    assert history.customers["customer_id"].tolist() == ["1", "2"]
    assert history.contacts["channel"].tolist() == ["push"]
    assert history.report.sources["events"] == "events (frame)"


def test_empty_activity_tables_load_and_replay(tmp_path: Path) -> None:
    folder = write_dir(
        tmp_path, contacts=CONTACTS.splitlines()[0] + "\n", events=EVENTS.splitlines()[0] + "\n"
    )
    history = load_history(folder)
    assert history.contacts.empty and history.events.empty
    assert str(history.events["ts"].dtype) == "datetime64[ns, UTC]"
    assert len(history.replay()) == 0


def test_write_history_validates_plain_frames(tmp_path: Path) -> None:
    frames = typed_frames()
    written = write_history(frames, tmp_path / "out", format="csv")
    assert load_history(tmp_path / "out").contacts["slot"].tolist()[1] == "today_evening"
    assert written["events"].read_text().splitlines()[1].startswith("e1,c1,2024-02-01T10:00:00Z")
    frames["contacts"].loc[0, "channel"] = "fax"
    with pytest.raises(HistoryError, match=r"contacts \(frame\), column 'channel', row 1"):
        write_history(frames, tmp_path / "bad")


def test_load_table_checks_one_table_alone(tmp_path: Path) -> None:
    folder = write_dir(tmp_path, customers=CUSTOMERS.splitlines()[0] + "\n")
    contacts = load_table(folder, "contacts")
    assert tuple(contacts.columns) == CONTACT_COLUMNS and len(contacts) == 3
    assert load_table(folder, "customers").empty
    with pytest.raises(HistoryError, match="unknown customer_id 'c1'"):
        load_history(folder)


def test_replay_stream_is_time_ordered_with_contacts_at_send_time(tmp_path: Path) -> None:
    # k2 is decided at 09:00 but sent at 19:00; the click on it comes at 20:00.
    events = EVENTS + "e5,c1,2024-02-01T09:00:00Z,delivered,email,k1,,,\n"
    history = load_history(write_dir(tmp_path, events=events))
    stream = replay_stream(history)
    assert len(stream) == len(history.contacts) + len(history.events)
    assert np.all(np.diff(stream.ts) >= 0)
    rows = list(stream)
    order = [(r.kind, r.contact_id if r.kind == CONTACT else history.events["event_id"][r.row])
             for r in rows]  # fmt: skip
    assert order == [
        (CONTACT, "k1"), (EVENT, "e5"), (EVENT, "e1"), (EVENT, "e2"), (EVENT, "e3"),
        (CONTACT, "k2"), (EVENT, "e4"), (CONTACT, "k3"),
    ]  # fmt: skip
    k2 = rows[5]
    assert k2.ts == pd.Timestamp("2024-02-01T19:00Z").timestamp()
    assert k2.decided_at == pd.Timestamp("2024-02-01T09:00Z").timestamp()
    assert k2.cost == 0.05 and math.isnan(k2.value)
    assert rows[7].cost == DEFAULT_COSTS[Channel.NONE]  # empty cost takes the channel default
    assert rows[3].value == 49.5 and rows[3].category == "shoes" and math.isnan(rows[3].cost)
    assert rows[4].customer_id == "" and rows[4].anonymous_id == "anon7"


def test_replay_stream_windows_and_shards(tmp_path: Path) -> None:
    stream = load_history(write_dir(tmp_path)).replay()
    noon = pd.Timestamp("2024-02-01T12:00Z").timestamp()
    before, after = stream.window(end=noon), stream.window(start=noon)
    assert len(before) + len(after) == len(stream)
    assert before.ts.max() < noon <= after.ts.min()
    shard = stream.for_customers({"c2"})
    assert set(shard.customer_id) == {"c2"} and len(shard) == 2


def test_replay_folds_into_customer_state(tmp_path: Path) -> None:
    history = load_history(write_dir(tmp_path))
    states = {c.customer_id: CustomerState.for_customer(c) for c in history.customer_records()}
    for row in history.replay():
        state = states.get(row.customer_id)
        if state is None:
            continue  # anonymous visitors are kept apart until they identify
        if row.kind == CONTACT:
            state.apply_contact(ts=row.ts, channel=row.channel, cost=row.cost)
        else:
            value = None if math.isnan(row.value) else row.value
            state.apply(ts=row.ts, type=row.type, channel=row.channel or None, value=value)
    assert states["c1"].purchases == 1 and states["c1"].monetary == 49.5
    assert states["c1"].channels["email"].opens == 1
    assert states["c2"].channels["sms"].contacts == 1 and states["c2"].channels["sms"].clicks == 1
    assert states["c2"].spend == pytest.approx(0.05)
