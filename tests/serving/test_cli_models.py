"""The command line's customer files for ``decisioning decide``."""

from __future__ import annotations

import pytest

from decisioning.errors import InvalidInput
from serving.cli_models import read_customer_ids


def test_one_id_a_line_skips_blank_lines(tmp_path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("c1\n\n  c2  \nc1\n")
    assert read_customer_ids(path) == ["c1", "c2", "c1"]  # a repeat is decided again


def test_a_csv_gives_its_customer_id_column(tmp_path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("customer_id,plan\nc1,basic\n c2 ,premium\n")
    assert read_customer_ids(path) == ["c1", "c2"]


def test_a_csv_row_without_a_customer_id_is_refused_with_its_row(tmp_path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("customer_id,plan\nc1,basic\n,premium\nc3,basic\n  ,basic\n")
    with pytest.raises(InvalidInput, match=r"ids\.csv: customer_id is empty in data row\(s\) 2, 4"):
        read_customer_ids(path)


def test_a_csv_without_the_column_or_a_missing_file_is_refused(tmp_path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("id,plan\nc1,basic\n")
    with pytest.raises(InvalidInput, match="customer_id column"):
        read_customer_ids(path)
    with pytest.raises(InvalidInput, match="does not exist"):
        read_customer_ids(tmp_path / "missing.txt")
