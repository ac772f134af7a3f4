"""The customer-support tools and steps over ``support.sqlite``: parameterised SQL, the customer from the case.

Every tool that touches a customer's records reads the authenticated
customer (``case["customer_id"]``, set by whoever authenticated the caller,
e.g. ``--input customer_id=1``) and never an argument: a model or a
customer's message can put any order number into the arguments, but the
query still only matches that customer's rows. Every query is parameterised
(``?``); no argument is ever part of the SQL text.

The database is ``$PETRIFLOW_SUPPORT_DB`` when set (the tests point it at a
copy), else a copy of the shipped ``support.sqlite`` made on first use under
``$PETRIFLOW_HOME/customer_support/``, so a demo never writes the shipped file.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TICKET_STATES = ("answered", "escalated", "waiting_on_customer")


class DatabaseBusy(Exception):
    """The database is locked by another writer: another attempt may succeed."""


def db_path() -> Path:
    """Where the tools read and write (see the module docstring)."""
    if os.environ.get("PETRIFLOW_SUPPORT_DB"):
        return Path(os.environ["PETRIFLOW_SUPPORT_DB"])
    from petriflow.execute.servers import home

    copy = home() / "customer_support" / "support.sqlite"
    if not copy.exists():
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HERE / "support.sqlite", copy)
    return copy


@contextmanager
def _db() -> Iterator[sqlite3.Connection]:
    con = sqlite3.connect(db_path(), timeout=5)
    con.row_factory = sqlite3.Row
    try:
        yield con
        con.commit()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            raise DatabaseBusy(str(exc)) from exc
        raise
    finally:
        con.close()


def _customer(case: Mapping[str, Any]) -> int:
    """The authenticated customer of the case; a case without one reaches no records."""
    try:
        return int(case["customer_id"])
    except (KeyError, TypeError, ValueError):
        raise PermissionError("the case has no authenticated customer_id") from None


def lookup_order(order_id: str, case: Mapping[str, Any]) -> dict[str, Any]:
    """The case's customer's order ``order_id``: status, product and delivery estimate (found: false otherwise).

    An order of another customer reads exactly like one that does not exist.
    """
    with _db() as con:
        row = con.execute(
            "SELECT o.id, o.status, o.eta, o.quantity, p.name AS product FROM orders o "
            "JOIN products p ON p.sku = o.sku WHERE o.id = ? AND o.customer_id = ?",
            (int(order_id), _customer(case))).fetchone()
    if row is None:
        return {"found": False, "order_id": int(order_id)}
    return {"found": True, "order_id": row["id"], "status": row["status"], "eta": row["eta"],
            "product": row["product"], "quantity": row["quantity"]}


def check_inventory(query: str) -> dict[str, Any]:
    """Products whose name shares a word (of 3+ letters) with ``query``: stock and restock date."""
    words = sorted({w for w in re.findall(r"[a-z0-9-]{3,}", query.lower())})[:20]
    if not words:
        return {"matches": []}
    clause = " OR ".join("name LIKE ?" for _ in words)
    with _db() as con:
        rows = con.execute(f"SELECT sku, name, in_stock, restock_date FROM products WHERE {clause} ORDER BY sku",
                           [f"%{w}%" for w in words]).fetchall()
    return {"matches": [dict(r) for r in rows]}


def update_ticket(status: str, note: str, case: Mapping[str, Any],
                  idempotency_key: str | None = None) -> dict[str, Any]:
    """Set the status and note of the case's ticket (``case["ticket_id"]``), if it is the customer's."""
    if status not in TICKET_STATES:
        raise ValueError(f"unknown ticket status {status!r}")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with _db() as con:
        cur = con.execute("UPDATE tickets SET status = ?, note = ?, updated = ? WHERE id = ? AND customer_id = ?",
                          (status, note[:2000], now, int(case.get("ticket_id", -1)), _customer(case)))
    return {"ticket_id": int(case.get("ticket_id", -1)), "status": status, "updated": cur.rowcount}


# -- python steps of the workflow ----------------------------------------------------------

_ORDER = re.compile(r"(?<!\d)(\d{4,8})(?!\d)")


def find_order(inputs: Mapping[str, Any], case: Mapping[str, Any], passes: int = 3) -> dict[str, Any]:
    """The order number in the message or, on a later pass, in the customer's answer to the clarification.

    ``label`` routes: ``found`` goes on to the lookup, ``missing`` asks the customer, and ``give_up`` (on
    the last pass the loop allows, ``passes``) hands the case to a person.
    """
    heard = inputs.get("previous", {}).get("clarify")
    texts = [heard] if isinstance(heard, str) else []
    texts.append(str(case.get("question", "")))
    for text in texts:
        m = _ORDER.search(text)
        if m:
            return {"label": "found", "order_id": m.group(1), "pass": inputs.get("loop_pass", 1), "heard": heard}
    n = inputs.get("loop_pass", 1)
    return {"label": "give_up" if n >= passes else "missing", "order_id": None, "pass": n, "heard": heard}


def ask(inputs: Mapping[str, Any]) -> str:
    """The clarifying question of this pass (the human step that follows waits for the customer's answer)."""
    n = inputs.get("loop_pass", 1)
    return ("Could you tell me your order number? It has four digits, like 1001." if n == 1
            else "Sorry, I still could not find an order number. Could you check your confirmation email?")


def heard(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Having heard the customer, go round again: ``find_order`` reads the answer on the next pass."""
    return {"label": "again", "heard": inputs.get("clarify")}


def facts(inputs: Mapping[str, Any]) -> str:
    """What the tools found, in one line the reply and the ticket note both use.

    In customer_support.yaml ``facts`` joins ``lookup`` and ``stock`` with ``after_any``: it reads
    whichever ran as ``inputs["after_any"]``, and which one it was as ``inputs["after_any_step"]``; a
    generated workflow may put it ``after`` one of them, read by its id.
    """
    step = inputs.get("after_any_step") or ("lookup" if "lookup" in inputs else "stock")
    found = inputs.get("after_any", inputs.get(step, {}))
    if step == "lookup":
        if not found.get("found"):
            return f"No order {found.get('order_id')} was found on this account."
        eta = f", expected {found['eta']}" if found.get("eta") else ""
        return f"Order {found['order_id']} ({found['quantity']} x {found['product']}) is {found['status']}{eta}."
    matches = found.get("matches", [])
    if not matches:
        return "We could not find that product in our catalogue."
    return " ".join(f"{m['name']}: {m['in_stock']} in stock" + (f", restock {m['restock_date']}"
                                                              if not m["in_stock"] and m["restock_date"] else "")
                    + "." for m in matches)
