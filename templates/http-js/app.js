// {{name}}: a Kite HTTP component in JavaScript (a WASI 0.2 `wasi:http` handler), built
// with componentize-js.
import {
  Fields,
  OutgoingBody,
  OutgoingResponse,
  ResponseOutparam,
} from "wasi:http/types@0.2.12";

const encoder = new TextEncoder();

export const incomingHandler = {
  handle(request, responseOut) {
    const response = new OutgoingResponse(
      Fields.fromList([["content-type", encoder.encode("text/plain")]]),
    );
    const body = response.body();
    ResponseOutparam.set(responseOut, { tag: "ok", val: response });
    const stream = body.write();
    stream.blockingWriteAndFlush(
      encoder.encode(`Hello from Kite at ${request.pathWithQuery()}\n`),
    );
    stream[Symbol.dispose]();
    OutgoingBody.finish(body, undefined);
  },
};
