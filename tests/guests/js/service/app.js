// A WASI 0.3 HTTP handler in JavaScript (componentize-qjs): streams its response body,
// reads a request body as a stream, and throws on /boom.
import types from "wasi:http/types@0.3.0";

// QuickJS has no TextEncoder.
function utf8(text) {
  return Uint8Array.from(unescape(encodeURIComponent(text)), (c) => c.charCodeAt(0));
}

async function* greeting(path) {
  yield utf8("Hello from JavaScript (WASI 0.3)");
  yield utf8(` at ${path}\n`);
}

async function bodyLength(request) {
  const [body, _trailers] = types.Request.consumeBody(request, Promise.resolve({ tag: "ok" }));
  let length = 0;
  for await (const chunk of body) {
    length += chunk.length;
  }
  return length;
}

export const handler = {
  async handle(request) {
    const path = request.getPathWithQuery();
    if (path.endsWith("/boom")) {
      throw new Error("the JavaScript handler failed on purpose");
    }
    const isPost = request.getMethod().tag === "post";
    const contents = isPost ? [utf8(`read ${await bodyLength(request)} bytes\n`)] : greeting(path);
    const headers = types.Fields.fromList([["content-type", utf8("text/plain")]]);
    const [response, _sent] = types.Response.new(
      headers,
      contents,
      Promise.resolve({ tag: "ok", val: null }),
    );
    return response;
  },
};
