//! A CGI program for Kite's Wagi tests: `PATH_INFO` picks a behaviour (a plain page of
//! what it was given, a status, a redirect, broken output, a failure, streaming, ...).

use std::io::{Read, Write};

fn main() {
    let path = std::env::var("PATH_INFO").unwrap_or_default();
    let mut out = std::io::stdout();
    match path.as_str() {
        "/status" => print!("Status: 201 Created\nContent-Type: text/plain\n\ncreated"),
        "/redirect" => print!("Location: /elsewhere\r\n\r\n"),
        "/no-type" => print!("X-A: 1\n\nbody"),
        "/garbage" => print!("this is not\x1b[31m a header block"),
        "/silent" => {}
        "/endless-head" => {
            // A head that never ends, then no end at all.
            out.write_all(&[b'h'; 70 * 1024]).unwrap();
            out.flush().unwrap();
            loop {
                std::hint::black_box(0);
            }
        }
        "/exit-early" => std::process::exit(3),
        "/trap-early" => std::process::abort(),
        "/exit-late" => {
            print!("Content-Type: text/plain\n\npartial");
            out.flush().unwrap();
            std::process::exit(3);
        }
        "/trap" => {
            print!("Content-Type: text/plain\n\n");
            out.flush().unwrap();
            std::process::abort();
        }
        "/loop" => loop {
            std::hint::black_box(0);
        },
        "/stderr" => {
            eprintln!("cgi says hello on stderr");
            print!("Content-Type: text/plain\n\nlogged");
        }
        "/big" => {
            // 8 MiB, written in 64 KiB pieces: streamed, never held whole.
            print!("Content-Type: application/octet-stream\n\n");
            let piece = vec![b'x'; 64 * 1024];
            for _ in 0..128 {
                out.write_all(&piece).unwrap();
            }
        }
        "/huge" => {
            // 100 MiB: far more than the host may hold for it.
            print!("Content-Type: application/octet-stream\n\n");
            let piece = vec![b'y'; 1 << 20];
            for _ in 0..100 {
                out.write_all(&piece).unwrap();
            }
        }
        "/bomb" => {
            // Grows until the memory limit stops it.
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "/write" => {
            let result = std::fs::write("/data/written.txt", "written by cgi");
            print!("Content-Type: text/plain\n\n{result:?}");
        }
        "/echo-later" => {
            // Answers first, then reads the body: the client sees the head before it sends.
            print!("Content-Type: text/plain\n\nready\n");
            out.flush().unwrap();
            let mut body = String::new();
            std::io::stdin().read_to_string(&mut body).unwrap();
            print!("got {body}");
        }
        "/open-many" => {
            // Keeps every file it opens: how many does the host let it hold?
            let mut held = Vec::new();
            while held.len() < 5000 {
                match std::fs::File::open("/data/note.txt") {
                    Ok(file) => held.push(file),
                    Err(_) => break,
                }
            }
            print!("Content-Type: text/plain\n\nopened {}", held.len());
        }
        "/file" => {
            let text = std::fs::read_to_string("/data/note.txt")
                .unwrap_or_else(|e| format!("error: {e}"));
            let outside = std::fs::read_to_string("/etc/passwd")
                .map(|_| "read /etc/passwd".to_string())
                .unwrap_or_else(|e| format!("no /etc/passwd: {e}"));
            print!("Content-Type: text/plain\n\n{text}\n{outside}");
        }
        _ => {
            let mut body = String::new();
            std::io::stdin().read_to_string(&mut body).unwrap();
            let mut vars: Vec<(String, String)> = std::env::vars().collect();
            vars.sort();
            print!("Content-Type: text/plain\nX-Cgi: yes\n\n");
            for (name, value) in vars {
                println!("{name}={value}");
            }
            println!("ARGS={:?}", std::env::args().collect::<Vec<_>>());
            print!("BODY={body}");
        }
    }
}
