// A WASI 0.2 HTTP handler in JavaScript (componentize-js).
import {
  Fields,
  OutgoingBody,
  OutgoingResponse,
  ResponseOutparam,
} from "wasi:http/types@0.2.6";

const encoder = new TextEncoder();

export const incomingHandler = {
  handle(request, responseOut) {
    const path = request.pathWithQuery();
    if (path.endsWith("/boom")) {
      throw new Error("the JavaScript handler failed on purpose");
    }
    const response = new OutgoingResponse(
      Fields.fromList([["content-type", encoder.encode("text/plain")]]),
    );
    const body = response.body();
    ResponseOutparam.set(responseOut, { tag: "ok", val: response });
    const stream = body.write();
    stream.blockingWriteAndFlush(encoder.encode(`Hello from JavaScript at ${path}\n`));
    stream[Symbol.dispose]();
    OutgoingBody.finish(body, undefined);
  },
};
