"""A Spin app in Python written as Spin's templates write them (Spin's Python SDK 5,
world `spin:up/http-trigger@4.1.0`): key-value, SQLite and variables through Spin 4's
interfaces."""

from urllib.parse import parse_qs, urlparse

from componentize_py_types import Err
from spin_sdk import http, key_value, sqlite, variables
from spin_sdk.http import Request, Response
from spin_sdk.sqlite import Value_Text


async def read_all(stream) -> list:
    """Every item of a stream the host writes."""
    items = []
    with stream:
        while not stream.writer_dropped:
            items += await stream.read(64)
    return items


async def kv(query: dict) -> str:
    with await key_value.open_default() as store:
        await store.set(query["key"], query["value"].encode())
        value = await store.get(query["key"])
        keys, _done = await store.get_keys()
        names = sorted(await read_all(keys))
        return f"get={value.decode()} keys={','.join(names)}\n"


async def notes(query: dict) -> str:
    with await sqlite.Connection.open_default() as db:
        create = "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)"
        await db.execute(create, [])
        await db.execute("INSERT INTO notes (body) VALUES (?)", [Value_Text(query["note"])])
        rowid = await db.last_insert_rowid()
        _columns, rows, _done = await db.execute("SELECT id, body FROM notes ORDER BY id", [])
        listed = [f"{row.values[0].value}:{row.values[1].value}" for row in await read_all(rows)]
        return f"rowid={rowid} notes={','.join(listed)}\n"


async def variable(query: dict) -> str:
    try:
        return f"{query['name']}={await variables.get(query['name'])}\n"
    except Err as e:
        return f"error: {type(e.value).__name__}\n"


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        url = urlparse(request.uri)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        routes = {"/kv": kv, "/sqlite": notes, "/variable": variable}
        if url.path == "/hello":
            text = "Hello from Python on Spin 4\n"
        elif url.path in routes:
            text = await routes[url.path](query)
        else:
            return Response(404, {"content-type": "text/plain"}, b"not found\n")
        return Response(200, {"content-type": "text/plain"}, text.encode())
