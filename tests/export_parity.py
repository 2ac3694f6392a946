"""What the export tests of the three services share: the export selects exactly what the list
selects, filter by filter."""

import json


def exported_ids(api, path: str) -> list[int]:
    response = api.get(path)
    assert response.status_code == 200, response.content if not response.streaming else path
    return [json.loads(line)["id"] for line in b"".join(response.streaming_content).splitlines()]


def listed_ids(api, path: str) -> list[int]:
    separator = "&" if "?" in path else "?"
    response = api.get(f"{path}{separator}page_size=1000&ordering=id")
    assert response.status_code == 200, response.json()
    return [record["id"] for record in response.json()["results"]]


def assert_every_filter_selects_what_the_list_selects(api, resource, filterset, samples) -> None:
    """For each filter of ``filterset`` (the list's and the export's), each of its ``samples``
    values selects the same ids in the same order on ``/<resource>/`` and
    ``/<resource>/export/``; a filter without samples fails, so that one added to the list is
    tested here too."""
    assert set(samples) == set(filterset.base_filters), "give every filter sample values"
    for name, values in samples.items():
        for value in values:
            query = f"{name}={value}"
            listed = listed_ids(api, f"/{resource}/?{query}")
            assert exported_ids(api, f"/{resource}/export/?{query}") == listed, query
    # And all of them at once.
    query = "&".join(f"{name}={values[0]}" for name, values in samples.items())
    assert exported_ids(api, f"/{resource}/export/?{query}") == listed_ids(
        api, f"/{resource}/?{query}"
    )
