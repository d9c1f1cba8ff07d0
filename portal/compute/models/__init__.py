from portal.compute.models.consoles import ConsoleSession
from portal.compute.models.firewall import FirewallRule, FirewallRuleSet, Protocol
from portal.compute.models.instances import (
    ACTIONS,
    Action,
    Instance,
    InstanceStatus,
    LaunchBatch,
)
from portal.compute.models.keys import SshKey
from portal.compute.models.operations import ACTIVE_STATES, Operation, OperationState
from portal.compute.models.simulated import BackendOrphan, SimulatedKnobs, SimulatedServer, SimulatedZone
from portal.compute.models.volumes import Volume, VolumeStatus

__all__ = [
    "ACTIONS",
    "ACTIVE_STATES",
    "Action",
    "BackendOrphan",
    "ConsoleSession",
    "FirewallRule",
    "FirewallRuleSet",
    "Instance",
    "InstanceStatus",
    "LaunchBatch",
    "Operation",
    "OperationState",
    "Protocol",
    "SimulatedKnobs",
    "SimulatedServer",
    "SimulatedZone",
    "SshKey",
    "Volume",
    "VolumeStatus",
]
