"""CSV line numbers: a record is reported at the line where it starts.

A quoted cell may hold line breaks, so one CSV record can span several lines of the file. A
skipped record is reported with its ``line``; for a record spanning lines 3 to 5, a user looks
for it at line 3 (where a spreadsheet or ``grep -n`` shows it starting), and the record after
it at its own first line, not one shifted by the breaks above.
"""

from ingest import formats
from ingest.checking import check_records
from ingest.resources import USERS

# line 1: header; 2: valid; 3-5: one record, its quoted name spans three lines, bad email;
# 6: blank name; 7-8: a quoted name over two lines, bad email; 9: blank line; 10: valid.
CSV = (
    b"name,email\n"
    b"Ann,ann@example.com\n"
    b'"Bob\n'
    b"the\n"
    b'builder",not-an-email\n'
    b",carl@example.com\n"
    b'"Dora\n'
    b'explorer",also-not-an-email\n'
    b"\n"
    b"Eve,eve@example.com\n"
)


def _lines(body: bytes) -> list[bytes]:
    return list(formats.split_lines([body]))


def test_each_record_carries_the_line_it_starts_on():
    records = list(formats.csv_records(_lines(CSV), "users"))

    assert [(line, record.name) for line, record in records] == [
        (2, "Ann"),
        (3, "Bob\nthe\nbuilder"),
        (6, ""),
        (7, "Dora\nexplorer"),
        (10, "Eve"),
    ]


def test_a_skipped_record_spanning_lines_is_reported_at_its_first_line():
    gathered = formats.read_csv(_lines(CSV), "users")

    skipped = check_records(gathered.batch.users, USERS).skipped
    lines = gathered.lines["users"]
    reported = {lines[index]: sorted(reasons) for index, _, reasons in skipped}
    # (a name holding a line break is refused too: control characters are not allowed)
    assert reported == {3: ["email", "name"], 6: ["name"], 7: ["email", "name"]}


def test_a_body_read_in_small_blocks_gives_the_same_lines():
    # The server hands the body over in blocks that cut lines anywhere.
    blocks = [CSV[start : start + 7] for start in range(0, len(CSV), 7)]
    gathered = formats.read_csv(formats.split_lines(blocks), "users")

    assert list(gathered.lines["users"]) == [2, 3, 6, 7, 10]
