"""A WebSocket echo server (python3-websockets), the upstream of the
WebSocket tests. It prints one line per handshake it accepts, so a test
can tell whether a refused handshake ever reached it."""
import asyncio
import sys

import websockets


async def echo(ws, *_):
    print("open", ws.path, ws.request_headers.get("Origin", "-"), flush=True)
    async for message in ws:
        await ws.send(message)


async def main(port):
    async with websockets.serve(echo, "127.0.0.1", port, max_size=1 << 24):
        print("listening", flush=True)
        await asyncio.Future()


asyncio.run(main(int(sys.argv[1])))
