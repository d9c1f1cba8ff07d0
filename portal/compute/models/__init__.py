from portal.compute.models.consoles import ConsoleSession
from portal.compute.models.firewall import FirewallRule, FirewallRuleSet, FirewallState, Protocol
from portal.compute.models.instances import (
    ACTIONS,
    NEEDS_CAPABILITY,
    REBUILD_FROM,
    Action,
    Instance,
    InstanceStatus,
    LaunchBatch,
)
from portal.compute.models.keys import SshKey
from portal.compute.models.networks import (
    PORT_PRESENT,
    Network,
    NetworkPort,
    NetworkStatus,
    PortStatus,
)
from portal.compute.models.operations import ACTIVE_STATES, Operation, OperationState
from portal.compute.models.simulated import (
    BackendOrphan,
    SimulatedKnobs,
    SimulatedNetwork,
    SimulatedServer,
    SimulatedSnapshot,
    SimulatedVolume,
    SimulatedZone,
)
from portal.compute.models.snapshots import (
    BackupFrequency,
    BackupSchedule,
    Snapshot,
    SnapshotKind,
    SnapshotStatus,
)
from portal.compute.models.volumes import VOLUME_SETTLED, VOLUME_TRANSITIONAL, Volume, VolumeStatus

__all__ = [
    "ACTIONS",
    "ACTIVE_STATES",
    "NEEDS_CAPABILITY",
    "PORT_PRESENT",
    "REBUILD_FROM",
    "VOLUME_SETTLED",
    "VOLUME_TRANSITIONAL",
    "Action",
    "BackendOrphan",
    "BackupFrequency",
    "BackupSchedule",
    "ConsoleSession",
    "FirewallRule",
    "FirewallRuleSet",
    "FirewallState",
    "Instance",
    "InstanceStatus",
    "LaunchBatch",
    "Network",
    "NetworkPort",
    "NetworkStatus",
    "Operation",
    "OperationState",
    "PortStatus",
    "Protocol",
    "SimulatedKnobs",
    "SimulatedNetwork",
    "SimulatedServer",
    "SimulatedSnapshot",
    "SimulatedVolume",
    "SimulatedZone",
    "Snapshot",
    "SnapshotKind",
    "SnapshotStatus",
    "SshKey",
    "Volume",
    "VolumeStatus",
]
