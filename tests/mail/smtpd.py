"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, a free port, plain text.

Usage: smtpd.py DIR. Prints the port on the first line once it listens, then writes each
delivered message to DIR/NNNN.eml (renamed into place, so a reader never sees half a file)
until it is killed.
"""

import asyncio
import os
import sys

from aiosmtpd.smtp import SMTP


class Save:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = f"{self.count:04}.eml"
        partial = os.path.join(self.directory, "." + name)
        with open(partial, "wb") as out:
            out.write(b"X-Envelope-To: " + ", ".join(envelope.rcpt_tos).encode() + b"\r\n")
            out.write(envelope.original_content)
        os.rename(partial, os.path.join(self.directory, name))
        return "250 Message accepted for delivery"


async def main():
    handler = Save(sys.argv[1])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


asyncio.run(main())
