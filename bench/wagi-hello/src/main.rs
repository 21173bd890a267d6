//! The CGI twin of examples/hello-rust, for comparing Kite's Wagi executor with its
//! wasi:http executor on the same request.

fn main() {
    print!("Content-Type: text/plain\n\nHello from Kite\n");
}
