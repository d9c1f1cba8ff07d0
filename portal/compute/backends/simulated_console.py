"""The simulated cloud's serial console: a login prompt and a tiny shell, so that the demo and the
tests have something to type at.

It behaves as a serial line does: what is typed is echoed by the "guest" (the terminal echoes
nothing itself), Enter arrives as a carriage return and lines end in CR LF, backspace arrives as
DEL (0x7f) and is answered with "\\b \\b". The shell knows `help`, `uname -a`, `hostname`,
`ip addr`, `uptime`, `whoami`, `date`, `echo` (with `$((…))` integer arithmetic), `clear`
and `exit`.

A user whose password was reset (`set_password`, kept as a hash in `passwords`) logs in with that
password only ("Login incorrect" otherwise); anyone else with any password, as before.
"""

from __future__ import annotations

import re
import threading
from datetime import datetime

from django.contrib.auth.hashers import check_password
from django.utils import timezone

from portal.compute.backends.console import ConsoleClosed, ConsoleStream

COMMANDS = (
    "help",
    "uname -a",
    "hostname",
    "ip addr",
    "uptime",
    "whoami",
    "date",
    "lsblk",
    "echo TEXT",
    "clear",
    "exit",
)
# Numbers of up to 18 digits, as a shell's 64-bit arithmetic takes.
ARITHMETIC = re.compile(r"\$\(\(\s*(-?\d{1,18})\s*([-+*/%])\s*(-?\d{1,18})\s*\)\)")


def _calculate(match: re.Match) -> str:
    left, op, right = int(match[1]), match[2], int(match[3])
    if op in "/%" and right == 0:
        return "0"
    return str(
        {"+": left + right, "-": left - right, "*": left * right, "/": int(left / right), "%": left % right}[
            op
        ]
    )


class SimulatedConsole(ConsoleStream):
    def __init__(
        self,
        *,
        name: str,
        address: str,
        booted_at: datetime,
        rescue: bool = False,
        passwords: dict[str, str] | None = None,
    ) -> None:
        self.name, self.address, self.booted_at, self.rescue = name, address, booted_at, rescue
        self.passwords = dict(passwords or {})  # {user: password hash}; the rescue system has none
        self._output = bytearray()
        self._line = ""
        self._stage = "login"  # login -> password -> shell
        self._user = ""
        self._closed = False
        self._ready = threading.Condition()
        with self._ready:
            self._say(f"\r\n{self._banner()}\r\n\r\n{name} login: ")

    # --- the stream ------------------------------------------------------------------------------

    def read(self, timeout: float) -> bytes:
        with self._ready:
            self._ready.wait_for(lambda: self._output or self._closed, timeout)
            if self._output:
                data, self._output = bytes(self._output), bytearray()
                return data
            if self._closed:
                raise ConsoleClosed("The console was closed.")
            return b""

    def write(self, data: bytes) -> None:
        with self._ready:
            if self._closed:
                raise ConsoleClosed("The console was closed.")
            for char in data.decode("utf-8", errors="replace"):
                self._key(char)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    # --- the guest ---------------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        self._output += text.encode()
        self._ready.notify_all()

    def _key(self, char: str) -> None:
        if char in "\r\n":
            line, self._line = self._line, ""
            self._say("\r\n")
            self._enter(line)
        elif char in "\x7f\b":
            if self._line:
                self._line = self._line[:-1]
                if self._stage != "password":
                    self._say("\b \b")
        elif char == "\x03":  # Ctrl-C: drop the line
            self._line = ""
            self._say("^C\r\n" + self._prompt())
        elif char == "\x04" and not self._line and self._stage == "shell":  # Ctrl-D: log out
            self._enter("exit")
        elif char.isprintable():
            self._line += char
            if self._stage != "password":
                self._say(char)

    def _banner(self) -> str:
        if self.rescue:
            return "Rescue system (Debian GNU/Linux 13) ttyS0: the server's own disk is /dev/vdb"
        return f"Debian GNU/Linux 13 {self.name} ttyS0"

    def _prompt(self) -> str:
        if self._stage == "shell":
            return f"{self._user}@{self.name}:~$ "
        return "Password: " if self._stage == "password" else f"{self.name} login: "

    def _enter(self, line: str) -> None:
        if self._stage == "login":
            if line.strip():
                self._user, self._stage = line.strip()[:32], "password"
        elif self._stage == "password":
            known = self.passwords.get(self._user)
            if known is not None and not check_password(line, known):
                self._stage, self._user = "login", ""
                self._say("\r\nLogin incorrect\r\n")
                self._say(self._prompt())
                return
            self._stage = "shell"
            self._say(
                f"Linux {self.name} 6.1.0-cloud-amd64 #1 SMP x86_64\r\n\r\n"
                "This is a simulated server: type `help` for what it understands.\r\n"
            )
        else:
            self._run(line.strip())
        self._say(self._prompt())

    def _run(self, command: str) -> None:
        program = command.split(" ", 1)[0]
        uptime = timezone.now() - self.booted_at
        minutes = int(uptime.total_seconds() // 60)
        answers = {
            "help": "Commands: " + ", ".join(COMMANDS),
            "hostname": self.name,
            "whoami": self._user,
            "uptime": f" {timezone.now():%H:%M:%S} up {minutes // 60}:{minutes % 60:02d},  1 user,  load average: 0.08, 0.03, 0.01",
            "date": f"{timezone.now():%a %b %d %H:%M:%S UTC %Y}",
            "lsblk": (
                "NAME   SIZE TYPE MOUNTPOINTS\r\nvda      2G disk /  (the rescue system)\r\n"
                "vdb     20G disk    (this server's own disk)\r\n`-vdb1  20G part"
                if self.rescue
                else "NAME   SIZE TYPE MOUNTPOINTS\r\nvda     20G disk\r\n`-vda1  20G part /"
            ),
            "ip": (
                "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 state UNKNOWN\r\n    inet 127.0.0.1/8 scope host lo\r\n"
                "2: ens3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 state UP\r\n"
                f"    inet {self.address or '100.64.0.10'}/24 scope global ens3"
            ),
        }
        if not command:
            return
        if command == "uname -a":
            self._say(
                f"Linux {self.name} 6.1.0-cloud-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.0 x86_64 GNU/Linux\r\n"
            )
        elif program == "echo":
            self._say(ARITHMETIC.sub(_calculate, command[5:]).strip("'\"") + "\r\n")
        elif program == "clear":
            self._say("\x1b[H\x1b[2J")
        elif program in ("exit", "logout"):
            self._stage, self._user = "login", ""
            self._say(f"\r\n{self._banner()}\r\n\r\n")
        elif program in answers and (program != "ip" or command.split()[1:2] in (["addr"], ["a"])):
            self._say(answers[program] + "\r\n")
        else:
            self._say(f"-bash: {program}: command not found\r\n")
