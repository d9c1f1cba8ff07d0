"""The answer of GET /operations/{id} (routers/instances.py): what one request to the cloud is
doing, and the server, volume or private network it changes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from ninja import Field, Schema


class OperationOut(Schema):
    id: UUID
    action: str
    state: Literal["pending", "running", "succeeded", "failed"]
    instance: UUID | None = Field(description="The server it changes (null for a volume's operation).")
    instance_url: str | None
    volume: UUID | None = Field(description="The volume it changes (null for a server's operation).")
    volume_url: str | None
    network: UUID | None = Field(None, description="The private network it changes (network_* actions).")
    network_url: str | None = None
    created_at: datetime
    finished_at: datetime | None
    error_message: str
    url: str
