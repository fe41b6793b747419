"""A small MCP server of tau2-bench's retail tools over a JSON database, for the tests of ``interlock mcp``.

    python tests/retail_mcp_server.py DB.json                 # stdio
    python tests/retail_mcp_server.py DB.json --http PORT     # streamable HTTP at http://127.0.0.1:PORT/mcp

Its tools do what tau2's do (tools.md), on the database in memory; a call that the tool itself rejects raises a
ToolError with tau2's message. It records nothing about the policy: that is the front's job.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError


def build(db: dict[str, Any]) -> MCPServer:
    server = MCPServer("retail")

    def order(order_id: str) -> dict[str, Any]:
        if order_id not in db["orders"]:
            raise ToolError("Order not found")
        found: dict[str, Any] = db["orders"][order_id]
        return found

    @server.tool()
    def find_user_id_by_email(email: str) -> str:
        """Find user id by email."""
        for uid, user in db["users"].items():
            if user["email"].lower() == email.lower():
                return str(uid)
        raise ToolError("User not found")

    @server.tool()
    def get_user_details(user_id: str) -> dict[str, Any]:
        """Get the details of a user, including their orders."""
        if user_id not in db["users"]:
            raise ToolError("User not found")
        found: dict[str, Any] = db["users"][user_id]
        return found

    @server.tool()
    def get_order_details(order_id: str) -> dict[str, Any]:
        """Get the status and details of an order."""
        return order(order_id)

    @server.tool()
    def cancel_pending_order(order_id: str, reason: str) -> dict[str, Any]:
        """Cancel a pending order."""
        found = order(order_id)
        if found["status"] != "pending":
            raise ToolError("Non-pending order cannot be cancelled")
        if reason not in ("no longer needed", "ordered by mistake"):
            raise ToolError("Invalid reason")
        found["status"] = "cancelled"
        found["cancel_reason"] = reason
        return found

    @server.tool()
    def return_delivered_order_items(order_id: str, item_ids: list[str], payment_method_id: str) -> dict[str, Any]:
        """Return some items of a delivered order."""
        found = order(order_id)
        if found["status"] != "delivered":
            raise ToolError("Non-delivered order cannot be returned")
        found["status"] = "return requested"
        found["return_items"] = sorted(item_ids)
        found["return_payment_method_id"] = payment_method_id
        return found

    return server


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        db = json.load(f)
    server = build(db)
    if len(sys.argv) > 3 and sys.argv[2] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[3]))
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
