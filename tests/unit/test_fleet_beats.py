"""bench fleet's cheap generator (bench/fleet_beats.py): its pre-serialized beat is the
JSON an agent sends, its request is well framed, and its reply reader takes a status and
a body by Content-Length off a persistent connection (and refuses a closed one)."""

from __future__ import annotations

import asyncio
import json

import pytest

from atwill.bench.fleet_beats import INVENTORY, body, exchange, head, request


def test_the_lean_body_is_the_json_of_an_idle_beat() -> None:
    assert json.loads(body(42, first=False)) == {
        "overlay": {}, "running_vms": 0, "instances": {}, "host": {"uptime_s": 42}}
    assert json.loads(body(0, first=True))["inventory"] == INVENTORY


def test_the_request_is_framed_with_its_length() -> None:
    raw = request(head("127.0.0.1:9", "node-1"), b'{"a":1}')
    top, _, payload = raw.partition(b"\r\n\r\n")
    assert top.startswith(b"POST /cluster/v1/nodes/node-1/heartbeat HTTP/1.1\r\n")
    assert b"\r\ncontent-length: 7" in top and payload == b'{"a":1}'


async def _talk(replies: list[bytes]) -> list[int | str]:
    served = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for reply in replies:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
                writer.write(reply)
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()
            served.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out: list[int | str] = []
    try:
        for _ in replies:
            try:
                out.append(await exchange(reader, writer, request(head("h", "n"), b"{}")))
            except ConnectionResetError:
                out.append("closed")
    finally:
        writer.close()
        await writer.wait_closed()
        await served.wait()
        server.close()
        await server.wait_closed()
    return out


def test_replies_are_read_by_their_length_on_one_connection() -> None:
    ok = b'HTTP/1.1 200 OK\r\nContent-Length: 27\r\n\r\n{"revision":3,"state":"up"}'
    gone = b'HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}'
    assert asyncio.run(_talk([ok, ok, gone])) == [200, 200, "closed"]


def test_an_oversized_reply_is_refused() -> None:
    huge = b"HTTP/1.1 200 OK\r\ncontent-length: 999999\r\n\r\n"
    with pytest.raises(ValueError):
        asyncio.run(_talk([huge]))
