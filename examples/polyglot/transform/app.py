"""The polyglot app's analysis step (Python): reads the posted text and answers with JSON:
how many words and lines it has, and its five most common words."""

import json
from collections import Counter

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


def read_body(request: IncomingRequest) -> bytes:
    body = request.consume()
    stream = body.stream()
    chunks = []
    while True:
        try:
            chunks.append(stream.blocking_read(16384))
        except Err as e:
            if isinstance(e.value, StreamError_Closed):
                break
            raise
    return b"".join(chunks)


def analyse(text: str) -> dict:
    words = [w.strip(".,;:!?\"'()").lower() for w in text.split()]
    words = [w for w in words if w]
    return {
        "words": len(words),
        "lines": len(text.splitlines()),
        # Sorted here: `most_common` imports `heapq` when called, and a module first imported
        # at run time is not in the component (componentize-py keeps what the top-level
        # imports loaded at build time).
        "top": sorted(Counter(words).items(), key=lambda kv: (-kv[1], kv[0]))[:5],
    }


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        text = read_body(request).decode("utf-8", errors="replace")
        payload = json.dumps(analyse(text)).encode()
        response = OutgoingResponse(Fields.from_list([("content-type", b"application/json")]))
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        stream = body.write()
        stream.blocking_write_and_flush(payload)
        stream.__exit__(None, None, None)
        OutgoingBody.finish(body, None)
