"""``python -m store_client``: see ``store_client.cli``."""

import sys

from store_client.cli import main

sys.exit(main())
