// The polyglot app's rendering step (JavaScript): turns the analysis JSON it is posted into
// an HTML page.
import {
  Fields,
  OutgoingBody,
  OutgoingResponse,
  ResponseOutparam,
} from "wasi:http/types@0.2.6";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function readBody(request) {
  const body = request.consume();
  const stream = body.stream();
  const chunks = [];
  for (;;) {
    try {
      chunks.push(stream.blockingRead(16384n));
    } catch (e) {
      if (e.payload && e.payload.tag === "closed") break;
      if (e.tag === "closed") break;
      throw e;
    }
  }
  stream[Symbol.dispose]();
  return decoder.decode(concat(chunks));
}

function concat(chunks) {
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}

const escape = (text) =>
  String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function render(analysis) {
  const rows = analysis.top
    .map(([word, count]) => `<tr><td>${escape(word)}</td><td>${count}</td></tr>`)
    .join("");
  return `<!doctype html>
<html><head><title>Report</title></head><body>
<h1>Report</h1>
<p>${analysis.words} words on ${analysis.lines} lines.</p>
<table><tr><th>word</th><th>times</th></tr>${rows}</table>
</body></html>
`;
}

export const incomingHandler = {
  handle(request, responseOut) {
    const page = render(JSON.parse(readBody(request)));
    const response = new OutgoingResponse(
      Fields.fromList([["content-type", encoder.encode("text/html; charset=utf-8")]]),
    );
    const body = response.body();
    ResponseOutparam.set(responseOut, { tag: "ok", val: response });
    const stream = body.write();
    stream.blockingWriteAndFlush(encoder.encode(page));
    stream[Symbol.dispose]();
    OutgoingBody.finish(body, undefined);
  },
};
