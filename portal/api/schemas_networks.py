"""Request and answer bodies of the private-network endpoints (routers/networks.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from ninja import Field, Schema

from portal.api.schemas import IdOrName, InputSchema, OperationRef, _bounds
from portal.compute.services.volumes import VOLUME_NAME_MAX_LENGTH


class NetworkIn(InputSchema):
    project: IdOrName
    name: str = Field(**_bounds(minLength=1, maxLength=VOLUME_NAME_MAX_LENGTH))
    zone: str
    cidr: str = Field(
        description="A private IPv4 range of /16 to /29 (inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16) "
        "that overlaps none of the project's other networks, e.g. 10.20.0.0/24."
    )


class NetworkServerOut(Schema):
    instance: UUID
    name: str
    status: Literal["waiting", "attaching", "attached", "detaching", "error"]
    address: str | None = Field(description="Its address inside the network, as the cloud allocated it.")
    fault_message: str


class NetworkOut(Schema):
    id: UUID
    project: int
    name: str
    zone: str
    cidr: str
    status: Literal["creating", "available", "deleting", "deleted", "error"]
    servers: list[NetworkServerOut]
    fault_message: str
    operation: OperationRef | None = Field(
        description="The request this answer is about, or the network's latest: poll it until it is finished."
    )
    created_at: datetime
    url: str


class NetworkList(Schema):
    items: list[NetworkOut]


class NetworkActionIn(InputSchema):
    action: Literal["attach", "detach"]
    instance: UUID = Field(strict=False, description="The server that joins or leaves the network.")
