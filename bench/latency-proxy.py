#!/usr/bin/python3
"""A loopback TCP proxy that adds round-trip latency, for benchmarks.

usage: latency-proxy.py LISTEN_PORT UPSTREAM_HOST:PORT RTT_MS [STATS_FILE]

Every byte is delayed by RTT/2 in each direction, in order. A new connection is held for one RTT
before its first byte moves on, standing in for the TCP handshake a real link would cost. The
number of accepted connections is written to STATS_FILE on SIGTERM.
"""
import asyncio
import signal
import sys

LISTEN = int(sys.argv[1])
UP_HOST, UP_PORT = sys.argv[2].rsplit(":", 1)
RTT = float(sys.argv[3]) / 1000.0
STATS = sys.argv[4] if len(sys.argv) > 4 else None
connections = 0


async def pump(reader, writer, loop):
    queue = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass

    task = asyncio.ensure_future(deliver())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            queue.put_nowait((loop.time() + RTT / 2, data))
    except (ConnectionResetError, OSError):
        pass
    queue.put_nowait((loop.time() + RTT / 2, None))
    await task


async def handle(creader, cwriter):
    global connections
    connections += 1
    loop = asyncio.get_running_loop()
    await asyncio.sleep(RTT)  # the handshake a real link would cost
    try:
        ureader, uwriter = await asyncio.open_connection(UP_HOST, int(UP_PORT))
    except OSError:
        cwriter.close()
        return
    await asyncio.gather(pump(creader, uwriter, loop), pump(ureader, cwriter, loop),
                         return_exceptions=True)
    for w in (cwriter, uwriter):
        try:
            w.close()
        except OSError:
            pass


def write_stats(*_):
    if STATS:
        with open(STATS, "w") as f:
            f.write(f"{connections}\n")
    sys.exit(0)


async def main():
    signal.signal(signal.SIGTERM, write_stats)
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN)
    async with server:
        await server.serve_forever()

asyncio.run(main())
