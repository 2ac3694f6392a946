"""``python manage.py check_integrity``: find orders whose user or product no longer exists.

The services keep this from happening through the API (a referenced user or product cannot be
deleted); rows changed behind its back (the sqlite3 shell, a restored backup of one database
but not the others) can still leave an order pointing nowhere. This command reads every order
and asks the users and products services about their ids (one query per 10,000 orders per
service), prints the dangling ones and exits with status 1 if there are any.
``--json`` prints one JSON document instead, for machines.
"""

import json
import sys

from django.core.management.base import BaseCommand

from orders_svc.selectors import dangling_orders, order_list


class Command(BaseCommand):
    help = "List orders whose user or product does not exist; exit 1 if there are any."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON for machines")

    def handle(self, *args, **options) -> None:
        checked = order_list().count()
        dangling = [
            {"order_id": order_id, "user_id": user_id, "product_id": product_id, "missing": missing}
            for order_id, user_id, product_id, missing in dangling_orders()
        ]
        if options["json"]:
            self.stdout.write(json.dumps({"checked": checked, "dangling": dangling}))
        else:
            for order in dangling:
                what = " and ".join(f"{kind} {order[f'{kind}_id']}" for kind in order["missing"])
                verb = "does" if len(order["missing"]) == 1 else "do"
                self.stdout.write(f"order {order['order_id']}: {what} {verb} not exist")
            orders = "1 order" if checked == 1 else f"{checked} orders"
            point = "points" if len(dangling) == 1 else "point"
            self.stdout.write(
                f"{orders} checked, {len(dangling)} {point} at a missing user or product."
            )
        if dangling:
            sys.exit(1)
