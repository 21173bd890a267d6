"""A WASI 0.2 HTTP handler in Python (componentize-py): answers with a greeting from its
environment and the request's path; a path ending in `/boom` raises."""

import os

from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        if request.path_with_query().endswith("/boom"):
            raise RuntimeError("the Python handler failed on purpose")
        greeting = os.environ.get("GREETING", "Hello")
        body_text = f"{greeting} from Python at {request.path_with_query()}\n".encode()
        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        stream = body.write()
        stream.blocking_write_and_flush(body_text)
        stream.__exit__(None, None, None)
        OutgoingBody.finish(body, None)
