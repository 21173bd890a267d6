//! A CGI program: reads the request from its environment and stdin, writes a small HTML page
//! to stdout (headers, a blank line, the body). Built for `wasm32-wasip1`, served by Wagi's
//! executor: no SDK, just `println!`.

use std::io::Read;

fn main() {
    let mut body = String::new();
    let _ = std::io::stdin().read_to_string(&mut body);
    let var = |name: &str| std::env::var(name).unwrap_or_default();

    println!("Content-Type: text/html; charset=utf-8");
    println!();
    println!("<!doctype html><title>Wagi in Rust</title>");
    println!("<h1>Hello from a CGI program</h1>");
    println!(
        "<p>{} {} (path info <code>{}</code>, query <code>{}</code>)</p>",
        escape(&var("REQUEST_METHOD")),
        escape(&var("SCRIPT_NAME")),
        escape(&var("PATH_INFO")),
        escape(&var("QUERY_STRING")),
    );
    println!("<h2>Environment</h2><ul>");
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    for (name, value) in vars {
        println!("<li><code>{}={}</code></li>", escape(&name), escape(&value));
    }
    println!("</ul><h2>Arguments</h2><p><code>{}</code></p>", escape(&format!("{:?}", std::env::args().collect::<Vec<_>>())));
    println!("<h2>Body ({} bytes)</h2><pre>{}</pre>", body.len(), escape(&body));
}

/// Text made safe to put in HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
