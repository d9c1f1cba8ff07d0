"""The consoles' websockets: thin, like a view. Each opens the session its one-time ticket names
(services.consoles), asks the server's backend for a `ConsoleStream` and relays bytes both ways
until either side closes, the server stops or is terminated (an event from the service that
stopped it), or a periodic check finds that the user may no longer connect. Close codes: 4403
refused, 4001 ended by the portal, 4000 the server's end closed, 4503 the cloud did not answer.

`SerialConsoleConsumer`: binary (or text) frames from the browser are keystrokes; binary to it is
what the server printed; text to it is JSON about the session: {"type": "opened", "server": name},
and {"type": "closed", "reason": …} just before the socket closes.

`GraphicalConsoleConsumer`: the server's display (RFB, for noVNC) in binary frames both ways and
nothing else (a VNC client reads every frame as RFB): the reason of a refusal or an end is the
close frame's reason. It speaks the "binary" subprotocol when the client asks for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django import db
from django.conf import settings

from portal.compute.backends import BackendError, ConsoleClosed, ConsoleStream, Transient, get_backend
from portal.compute.services import consoles

log = logging.getLogger(__name__)

MAX_INPUT_BYTES = 64 * 1024  # a generous paste; more in one frame is dropped
READ_WAIT_SECONDS = 0.5  # how long one read waits, so that the reader notices a close


def _open_stream(session, kind: str) -> ConsoleStream:
    """Run in a worker thread of its own (a libvirt console takes a helper process): not in the
    thread the ORM calls of every request share."""
    instance = session.instance
    backend = get_backend(instance.zone.backend)
    try:
        if kind == "graphical":
            return backend.open_graphical_console(instance.backend_id)
        return backend.open_serial_console(instance.backend_id)
    finally:
        db.connections.close_all()  # this thread's, if the backend read the database


class SerialConsoleConsumer(AsyncWebsocketConsumer):
    kind = "serial"
    session = None
    stream: ConsoleStream | None = None
    ended = False

    async def _accept(self) -> None:
        await self.accept()

    async def _say_opened(self) -> None:
        await self.send(text_data=json.dumps({"type": "opened", "server": self.session.instance.name}))

    async def connect(self) -> None:
        await self._accept()  # accepted first, so that a refusal can say why
        self.tasks: list[asyncio.Task] = []
        self.stop_reading = threading.Event()
        instance_id = self.scope["url_route"]["kwargs"]["instance_id"]
        ticket = parse_qs(self.scope.get("query_string", b"").decode()).get("ticket", [""])[0]
        client = self.scope.get("client") or (None,)
        try:
            self.session = await database_sync_to_async(consoles.console_session_open)(
                ticket=ticket, instance_id=instance_id, ip_address=client[0], kind=self.kind
            )
        except consoles.ConsoleRefused as refused:
            await self._say_closed(refused.message, 4403)
            return
        try:
            self.stream = await asyncio.to_thread(_open_stream, self.session, self.kind)
        except BackendError as error:
            await self._end(error.user_message, 4503 if isinstance(error, Transient) else 4000)
            return
        except Exception:
            log.exception("opening the %s console of %s failed", self.kind, instance_id)
            await self._end("The console could not be opened: please try again later.", 4503)
            return
        self.group = consoles.console_group(instance_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self._say_opened()
        loop = asyncio.get_running_loop()
        self.tasks = [asyncio.create_task(self._relay_output(loop)), asyncio.create_task(self._recheck())]

    # --- server -> browser ------------------------------------------------------------------------

    async def _relay_output(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reads in a thread of its own (a console reads for as long as it is open), hands each
        chunk to this loop."""
        chunks: asyncio.Queue = asyncio.Queue()
        stream, stop = self.stream, self.stop_reading

        def read() -> None:
            while not stop.is_set():
                try:
                    data = stream.read(READ_WAIT_SECONDS)
                except ConsoleClosed as closed:
                    loop.call_soon_threadsafe(chunks.put_nowait, closed)
                    return
                except BackendError as error:
                    loop.call_soon_threadsafe(chunks.put_nowait, ConsoleClosed(error.user_message))
                    return
                except Exception as error:  # a bug in a backend's stream: end this session only
                    log.exception("console stream failed")
                    loop.call_soon_threadsafe(
                        chunks.put_nowait, ConsoleClosed(f"The console failed ({error.__class__.__name__}).")
                    )
                    return
                if data:
                    loop.call_soon_threadsafe(chunks.put_nowait, data)

        threading.Thread(target=read, name=f"console-{self.session.pk}", daemon=True).start()
        while True:
            chunk = await chunks.get()
            if isinstance(chunk, ConsoleClosed):
                await self._end(str(chunk) or "The server closed its console.", 4000)
                return
            await self.send(bytes_data=chunk)

    async def _recheck(self) -> None:
        while True:
            await asyncio.sleep(settings.CONSOLE_RECHECK_SECONDS)
            reason = await database_sync_to_async(consoles.console_session_refusal)(self.session.pk)
            if reason:
                await self._end(reason, 4001)
                return

    async def console_end(self, event: dict) -> None:
        """The server was stopped or terminated (services.consoles.console_sessions_end)."""
        await self._end(event["reason"], 4001)

    # --- browser -> server ------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.stream is None or self.ended:
            return
        data = bytes_data if bytes_data is not None else (text_data or "").encode()
        if not data or len(data) > MAX_INPUT_BYTES:
            return
        try:
            await asyncio.to_thread(self.stream.write, data)
        except ConsoleClosed as closed:
            await self._end(str(closed) or "The server closed its console.", 4000)
        except BackendError as error:
            await self._end(error.user_message, 4000)
        except Exception:  # a stream that breaks otherwise still ends the session, audited
            log.exception("console %s: writing to the server's console failed", self.session.pk)
            await self._end("The console stopped working. Please open it again.", 4000)

    # --- the end ---------------------------------------------------------------------------------

    async def _say_closed(self, reason: str, code: int) -> None:
        self.ended = True
        await self.send(text_data=json.dumps({"type": "closed", "reason": reason}))
        await self.close(code)

    async def _end(self, reason: str, code: int) -> None:
        if self.ended:
            return
        await self._say_closed(reason, code)
        await self._release(reason)

    async def disconnect(self, code: int) -> None:
        await self._release("Closed by the user.")

    async def _release(self, reason: str) -> None:
        """Close the stream and record the end, once, whichever side ended first."""
        self.ended = True
        current = asyncio.current_task()
        for task in getattr(self, "tasks", []):
            if task is not current:
                task.cancel()
        if getattr(self, "stop_reading", None) is not None:
            self.stop_reading.set()
        stream, self.stream = self.stream, None
        if stream is not None:
            await asyncio.to_thread(stream.close)
        session, self.session = self.session, None
        if session is not None:
            if getattr(self, "group", None):
                await self.channel_layer.group_discard(self.group, self.channel_name)
            await database_sync_to_async(consoles.console_session_close)(session_id=session.pk, reason=reason)


class GraphicalConsoleConsumer(SerialConsoleConsumer):
    """The server's display, relayed to noVNC: the serial console's ticket, checks, audit and
    ending, with RFB's framing (binary only; the reason goes in the close frame)."""

    kind = "graphical"

    async def _accept(self) -> None:
        asked = self.scope.get("subprotocols") or []
        await self.accept(subprotocol="binary" if "binary" in asked else None)

    async def _say_opened(self) -> None:
        """Nothing: the display's first bytes (the RFB greeting) say it is open."""

    async def _say_closed(self, reason: str, code: int) -> None:
        self.ended = True
        # A close frame's reason holds 123 bytes at most.
        await self.close(code, reason=reason.encode()[:123].decode(errors="ignore"))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if bytes_data is not None:  # a VNC client sends RFB in binary frames only
            await super().receive(bytes_data=bytes_data)
