"""Fixtures of the ingest tests."""

import pytest

from tests.ingest.disks import mount_small_disk, unmount


@pytest.fixture
def small_disk():
    """A 4 MiB tmpfs, unmounted afterwards; the test is skipped where it cannot be mounted."""
    directory, why_not = mount_small_disk()
    if directory is None:
        pytest.skip(f"cannot mount a tmpfs here: {why_not}")
    try:
        yield directory
    finally:
        unmount(directory)
