"""Root password reset on the simulated cloud (`set_password` in base.py): the guest keeps the
password's hash (Django's hasher: the same care a real /etc/shadow gets), and its serial console's
login prompt accepts that user with that password only from then on (simulated_console.py)."""

from __future__ import annotations

from django.contrib.auth.hashers import make_password
from django.db import transaction

from portal.compute.backends.base import BackendState, Capability, Rejected, not_available


class SimulatedPassword:
    """Mixed into SimulatedBackend (uses its `_call`, `_row`, `_settle` and `capabilities`)."""

    def set_password(self, backend_id: str, user: str, password: str) -> None:
        self._call()
        with transaction.atomic():
            row = self._row(backend_id, lock=True)
            self._settle(row)
            if Capability.PASSWORD_RESET not in self.capabilities(row.zone_code):
                raise not_available(Capability.PASSWORD_RESET, row.zone_code)
            if row.state != BackendState.RUNNING:
                raise Rejected(
                    f"The server is {row.state}: its password can be reset while it runs.",
                    f"simulated {backend_id}: set_password while {row.state}",
                )
            if not password:
                raise Rejected("A new password is needed.", "simulated set_password without one")
            row.password_hashes = {**row.password_hashes, user: make_password(password)}
            row.save(update_fields=["password_hashes"])
