"""A WASI 0.3 HTTP handler in Python (componentize-py, `wasi:http/service@0.3.0`): answers
with a greeting from its environment and the request's path, the body written by a task
spawned after the response is returned."""

import os

import componentize_py_async_support
import wit_world
from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.wasi_http_types import Fields, Request, Response


class Handler(exports.Handler):
    async def handle(self, request: Request) -> Response:
        greeting = os.environ.get("GREETING", "Hello")
        text = f"{greeting} from Python (WASI 0.3) at {request.get_path_with_query()}\n"
        writer, reader = wit_world.byte_stream()
        trailers_tx, trailers_rx = (
            wit_world.result_option_wasi_http_types_fields_wasi_http_types_error_code_future(
                lambda: Ok(None)
            )
        )
        response, _sent = Response.new(
            Fields.from_list([("content-type", b"text/plain")]), reader, trailers_rx
        )

        async def write_body() -> None:
            with writer:
                await writer.write(text.encode())
            with trailers_tx:
                await trailers_tx.write(Ok(None))

        componentize_py_async_support.spawn(write_body())
        return response
