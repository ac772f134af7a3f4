"""Build ``support.sqlite``, the customer-support sample data: customers, products (inventory), orders, tickets.

Run ``python models/customer_support/build_db.py`` to rebuild it; the data is
written here, in the repository, so the database it makes is the same every
time (the tests compare a copy against this script's rows). Every name and
address is invented for the project.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DB = HERE / "support.sqlite"

SCHEMA = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, tier TEXT NOT NULL);
CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT NOT NULL, in_stock INTEGER NOT NULL CHECK (in_stock >= 0),
                       restock_date TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                     sku TEXT NOT NULL REFERENCES products(sku), quantity INTEGER NOT NULL, status TEXT NOT NULL,
                     placed TEXT NOT NULL, eta TEXT);
CREATE TABLE tickets (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                      status TEXT NOT NULL, summary TEXT NOT NULL, note TEXT, updated TEXT);
"""

CUSTOMERS = [
    (1, "Ada Moreau", "ada@example.org", "gold"),
    (2, "Bilal Haddad", "bilal@example.org", "standard"),
    (3, "Chen Wei", "chen@example.org", "standard"),
    (4, "Dara Okafor", "dara@example.org", "gold"),
]
PRODUCTS = [
    ("KB-100", "mechanical keyboard", 12, None),
    ("MS-200", "wireless mouse", 0, "2026-12-15"),
    ("HD-300", "noise cancelling headphones", 3, None),
    ("MN-400", "27 inch monitor", 0, "2027-01-10"),
    ("CB-500", "usb-c cable", 140, None),
]
ORDERS = [
    (1001, 1, "KB-100", 1, "shipped", "2026-11-20", "2026-11-28"),
    (1002, 1, "MS-200", 2, "backordered", "2026-11-22", "2026-12-18"),
    (1003, 2, "HD-300", 1, "delivered", "2026-11-10", None),
    (1004, 3, "MN-400", 1, "processing", "2026-11-29", "2027-01-14"),
    (1005, 4, "CB-500", 3, "shipped", "2026-11-27", "2026-12-03"),
]
TICKETS = [
    (501, 1, "open", "where is my order", None, None),
    (502, 2, "open", "headphones question", None, None),
    (503, 3, "open", "monitor delivery", None, None),
    (504, 4, "open", "cable order", None, None),
]


def build(path: Path = DB) -> Path:
    """Write the sample database to ``path`` (replacing it) and return the path."""
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        con.executescript(SCHEMA)
        con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", CUSTOMERS)
        con.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", PRODUCTS)
        con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", ORDERS)
        con.executemany("INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?)", TICKETS)
        con.commit()
        con.execute("VACUUM")
    finally:
        con.close()
    return path


if __name__ == "__main__":
    print(f"wrote {build(Path(sys.argv[1]) if len(sys.argv) > 1 else DB)}")
