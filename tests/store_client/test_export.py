"""Where an export's records end, for a resumed export: a line, except inside CSV quotes."""

from store_client.export import _Records


def test_csv_records_end_where_they_end_however_the_file_is_read():
    # An export's CSV read in blocks of any size: a record ends at a line break outside quotes
    # only, even when a quoted field's line break or a doubled quote falls across two blocks.
    text = b'id,name\r\n1,"a\r\nb"\r\n2,"say ""hi""\n"\r\n3,plain\r\n4,"x'
    for size in range(1, len(text) + 1):
        records, count, ends = _Records("csv"), 0, []
        for start in range(0, len(text), size):
            found, end, _before = records.scan(text[start : start + size])
            count += found
            if found:
                ends.append(start + end)
        assert count == 4, size
        assert ends[-1] == text.index(b"4,"), size
