"""Pure wire vocabulary and rules: no asyncio, sockets, clock or database."""
