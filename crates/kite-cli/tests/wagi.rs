//! Wagi: a WASI preview 1 program (a plain Rust `fn main`, tests/guests/cgi) served as a
//! CGI script from spin.toml (v2 and v1) and kite.toml: the CGI environment, arguments and
//! stdin; the response head and streamed body; and every way a program can get it wrong.

mod common;
use bytes::Bytes;
use common::{core_module_guest, send_request, up_fails, Server, TestApp};
use http_body_util::{Full, StreamBody};
use std::path::Path;

fn cgi() -> String {
    core_module_guest("cgi").display().to_string()
}

/// A Spin app serving the CGI program at `/cgi/...`, with `extra` lines in its component.
fn spin_app(extra: &str) -> TestApp {
    TestApp::spin(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"wagi\"\n\
         [[trigger.http]]\nroute = \"/cgi/...\"\ncomponent = \"cgi\"\nexecutor = {{ type = \"wagi\" }}\n\
         [component.cgi]\nsource = {:?}\n{extra}",
        cgi()
    ))
}

fn var<'a>(text: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}=");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test]
async fn a_program_gets_the_request_in_its_environment_arguments_and_stdin() {
    let app = spin_app("environment = { GREETING = \"hej\", PATH_INFO = \"/forged\" }\n");
    let server = Server::start(&app);
    let request = http::Request::post("/cgi/some/p%41th?x=1&y=2")
        .header("host", "example.com:8080")
        .header("content-type", "text/plain")
        .header("x-thing", "one")
        .header("authorization", "Bearer secret")
        .body(Full::new(Bytes::from("hello body")))
        .unwrap();
    let reply = send_request(server.addr, request).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-cgi"), Some("yes"));
    assert_eq!(reply.header("content-type"), Some("text/plain"));
    let text = &reply.body;
    for (name, value) in [
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/some/pAth"),
        ("X_RAW_PATH_INFO", "/some/p%41th"),
        ("SCRIPT_NAME", "/cgi"),
        ("QUERY_STRING", "x=1&y=2"),
        ("CONTENT_LENGTH", "10"),
        ("CONTENT_TYPE", "text/plain"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_NAME", "example.com"),
        ("SERVER_PORT", "8080"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_SOFTWARE", "WAGI/1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("X_MATCHED_ROUTE", "/cgi/..."),
        (
            "X_FULL_URL",
            "http://example.com:8080/cgi/some/p%41th?x=1&y=2",
        ),
        ("HTTP_X_THING", "one"),
        ("GREETING", "hej"),
        ("ARGS", "[\"/cgi/some/p%41th\", \"x=1\", \"y=2\"]"),
        ("BODY", "hello body"),
    ] {
        assert_eq!(var(text, name), value, "{name}");
    }
    // Credentials stay out of the environment; the manifest cannot override CGI variables.
    assert!(!text.contains("HTTP_AUTHORIZATION"), "{text}");
    assert!(!text.contains("/forged"), "{text}");
    // Nothing of the host's environment.
    assert!(!text.contains("HOME="), "{text}");
}

#[tokio::test]
async fn a_body_without_a_length_is_read_first_to_tell_its_length() {
    let server = Server::start(&spin_app(""));
    let chunks = futures::stream::iter(
        ["chunk one, ", "chunk two"]
            .map(|c| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from(c)))),
    );
    let request = http::Request::post("/cgi/")
        .header("host", "localhost")
        .body(StreamBody::new(chunks))
        .unwrap();
    let reply = send_request(server.addr, request).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(var(&reply.body, "CONTENT_LENGTH"), "20");
    assert_eq!(var(&reply.body, "BODY"), "chunk one, chunk two");
}

#[tokio::test]
async fn the_head_sets_status_and_headers() {
    let server = Server::start(&spin_app(""));
    let reply = server.get("/cgi/status").await;
    assert_eq!((reply.status, reply.body.as_str()), (201, "created"));
    let reply = server.get("/cgi/redirect").await;
    assert_eq!(reply.status, 302);
    assert_eq!(reply.header("location"), Some("/elsewhere"));
}

#[tokio::test]
async fn output_that_is_not_a_cgi_response_is_a_500_with_one_log_line() {
    let server = Server::start(&spin_app(""));
    for (path, problem) in [
        ("/cgi/no-type", "no `Content-Type`, `Location` or `Status`"),
        ("/cgi/garbage", "without a blank line"),
        ("/cgi/silent", "without a blank line"),
    ] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 500, "{path}: {}", reply.body);
        assert!(reply.body.contains("not a CGI response"), "{}", reply.body);
        server.wait_for_log(problem);
    }
    // A head longer than 64 KiB is answered at once, and the program (which would run on)
    // is stopped, not waited for until its deadline (that would be a 504).
    let reply = server.get("/cgi/endless-head").await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    server.wait_for_log("without ending its header block");
    server.wait_for_log("the client went away; the program was stopped");
    // The first bytes are shown, escaped: no terminal escape reaches the log.
    let line = server.expect_log_line("the garbage output", |l| l.contains("this is not"));
    assert!(line.contains("\\u{1b}[31m"), "{line}");
}

#[tokio::test]
async fn failures_before_the_head_are_500s_and_after_it_break_the_response() {
    let server = Server::start(&spin_app(""));
    let reply = server.get("/cgi/exit-early").await;
    assert_eq!(reply.status, 500);
    server.wait_for_log("the program exited with status 3");
    let reply = server.get("/cgi/trap-early").await;
    assert_eq!(reply.status, 500);
    server.wait_for_log("the component trapped");
    for path in ["/cgi/exit-late", "/cgi/trap"] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert!(
            reply.body_failed,
            "{path}: the body ended cleanly: {}",
            reply.body
        );
    }
    // stderr is the program's log.
    let reply = server.get("/cgi/stderr").await;
    assert_eq!(reply.body, "logged");
    server.wait_for_log("cgi says hello on stderr");
}

#[tokio::test]
async fn a_program_that_never_ends_is_stopped_at_its_deadline() {
    let app = TestApp::new(&format!(
        "manifest_version = 1\n[app]\nname = \"wagi\"\n\
         [[route]]\npath = \"/cgi/...\"\ncomponent = \"cgi\"\n\
         [component.cgi]\nsource = {:?}\nexecutor = {{ type = \"wagi\" }}\n\
         [component.cgi.limits]\ntimeout = \"2s\"\n",
        cgi()
    ));
    let server = Server::start(&app);
    let reply = server.get("/cgi/loop").await;
    assert_eq!(reply.status, 504, "{}", reply.body);
    server.wait_for_log("ran past its 2s deadline");
    // The server is fine afterwards.
    assert_eq!(server.get("/cgi/status").await.status, 201);
}

#[tokio::test]
async fn the_body_streams_both_ways() {
    let server = Server::start(&spin_app(""));
    let reply = server.get("/cgi/big").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), 8 << 20);

    // The program answers before it reads the body; the client sends the body only after
    // the first bytes of the answer have arrived.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /cgi/echo-later HTTP/1.1\r\nhost: localhost\r\ncontent-length: 5\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("ready\n") {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(std::time::Duration::from_secs(60), stream.read(&mut chunk))
            .await
            .expect("the head and first bytes arrive before the body is sent")
            .unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&chunk[..n]);
    }
    stream.write_all(b"later").await.unwrap();
    let mut rest = Vec::new();
    while !String::from_utf8_lossy(&rest).contains("got later") {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&rest)
        );
        rest.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn granted_files_are_there_and_nothing_else() {
    let app = TestApp::new(&format!(
        "manifest_version = 1\n[app]\nname = \"wagi\"\n\
         [[route]]\npath = \"/cgi/...\"\ncomponent = \"cgi\"\nexecutor = {{ type = \"wagi\" }}\n\
         [component.cgi]\nsource = {:?}\nfiles = [{{ source = \"data\", destination = \"/data\" }}]\n",
        cgi()
    ));
    std::fs::create_dir(app.path().join("data")).unwrap();
    std::fs::write(app.path().join("data/note.txt"), "a granted note").unwrap();
    let server = Server::start(&app);
    let reply = server.get("/cgi/file").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.starts_with("a granted note\n"), "{}", reply.body);
    assert!(reply.body.contains("no /etc/passwd"), "{}", reply.body);
    // Open files are capped like any instance's handles (2,048 at the default
    // `host_memory`): a program that keeps opening is stopped, as a component would be.
    let reply = server.get("/cgi/open-many").await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    server.wait_for_log("resource table has no free keys");
}

/// A program calling WASI's socket functions gets `notsock` without a log line per call.
#[tokio::test]
async fn socket_calls_fail_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let module = write_wat(
        dir.path(),
        "sockets.wasm",
        r#"(module
             (import "wasi_snapshot_preview1" "sock_shutdown" (func $shutdown (param i32 i32) (result i32)))
             (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (data (i32.const 16) "Content-Type: text/plain\0a\0aok")
             (func (export "_start") (local $i i32)
               (loop $again
                 (drop (call $shutdown (i32.const 0) (i32.const 0)))
                 (local.set $i (i32.add (local.get $i) (i32.const 1)))
                 (br_if $again (i32.lt_u (local.get $i) (i32.const 100000))))
               (i32.store (i32.const 0) (i32.const 16))
               (i32.store (i32.const 4) (i32.const 28))
               (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    );
    let app = TestApp::spin(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"wagi\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"s\"\nexecutor = {{ type = \"wagi\" }}\n\
         [component.s]\nsource = {module:?}\n"
    ));
    let server = Server::start(&app);
    let reply = server.get("/").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    let log = server.log();
    assert!(
        log.lines().count() < 50,
        "{} log lines",
        log.lines().count()
    );
}

/// Reading a body without a length to learn it counts against the request's deadline.
#[tokio::test]
async fn a_trickled_body_without_a_length_ends_at_the_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::new(&format!(
        "manifest_version = 1\n[app]\nname = \"wagi\"\n\
         [[route]]\npath = \"/cgi/...\"\ncomponent = \"cgi\"\nexecutor = {{ type = \"wagi\" }}\n\
         [component.cgi]\nsource = {:?}\n[component.cgi.limits]\ntimeout = \"2s\"\n",
        cgi()
    ));
    // Bodies may idle for a minute: only the deadline can end this one.
    let server = Server::start_with(&app, &["--body-timeout", "60s"]);
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /cgi/ HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let mut chunk = [0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(50), stream.read(&mut chunk))
        .await
        .expect("an answer before the body idle timeout")
        .unwrap();
    reply.extend_from_slice(&chunk[..n]);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 504"), "{reply}");
}

#[tokio::test]
async fn version_1_manifests_and_kite_toml_routes_choose_the_executor() {
    let v1 = TestApp::spin(&format!(
        "spin_manifest_version = \"1\"\nname = \"wagi\"\nversion = \"1.0.0\"\n\
         trigger = {{ type = \"http\", base = \"/\" }}\n\
         [[component]]\nid = \"cgi\"\nsource = {:?}\n\
         [component.trigger]\nroute = \"/cgi/...\"\nexecutor = {{ type = \"wagi\" }}\n",
        cgi()
    ));
    let server = Server::start(&v1);
    assert_eq!(server.get("/cgi/status").await.status, 201);
    drop(server);

    let kite = TestApp::new(&format!(
        "manifest_version = 1\n[app]\nname = \"wagi\"\n\
         [[route]]\npath = \"/cgi/...\"\ncomponent = \"cgi\"\n\
         executor = {{ type = \"wagi\", argv = \"prog ${{ARGS}} --end\" }}\n\
         [component.cgi]\nsource = {:?}\n",
        cgi()
    ));
    let server = Server::start(&kite);
    let reply = server.get("/cgi/?a&b").await;
    assert_eq!(
        var(&reply.body, "ARGS"),
        "[\"prog\", \"a\", \"b\", \"--end\"]"
    );
}

fn write_wat(dir: &Path, name: &str, wat: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
    path.display().to_string()
}

#[test]
fn programs_that_cannot_run_fail_the_start_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let experimental = write_wat(
        dir.path(),
        "experimental.wasm",
        r#"(module (import "wasi_experimental_http" "req" (func (param i32)))
                   (func (export "_start")))"#,
    );
    let no_start = write_wat(
        dir.path(),
        "lib.wasm",
        r#"(module (func (export "handle")) (memory (export "memory") 1))"#,
    );
    let component = common::guest("probe").display().to_string();
    for (source, entrypoint, expected) in [
        (
            experimental.as_str(),
            "_start",
            "imports `wasi_experimental_http::req`",
        ),
        (
            no_start.as_str(),
            "_start",
            "exports no function `_start` (the Wagi `entrypoint`); it exports handle",
        ),
        (
            component.as_str(),
            "_start",
            "is not a command: a CGI program must export `wasi:cli/run`",
        ),
    ] {
        let app = TestApp::spin(&format!(
            "spin_manifest_version = 2\n[application]\nname = \"wagi\"\n\
             [[trigger.http]]\nroute = \"/...\"\ncomponent = \"cgi\"\n\
             executor = {{ type = \"wagi\", entrypoint = {entrypoint:?} }}\n\
             [component.cgi]\nsource = {source:?}\n"
        ));
        let stderr = up_fails(&app, &[]);
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
    // A custom entrypoint that exists is fine to load (it is run instead of `_start`).
    let bad_setting = TestApp::spin(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"wagi\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"cgi\"\n\
         executor = {{ type = \"wagi\", arguments = \"x\" }}\n\
         [component.cgi]\nsource = {:?}\n",
        cgi()
    ));
    let stderr = up_fails(&bad_setting, &[]);
    assert!(stderr.contains("unknown setting `arguments`"), "{stderr}");
}

/// Wagi's own manifest, `modules.toml`, served as it is.
#[tokio::test]
async fn a_wagi_modules_toml_is_served_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/note.txt"), "from a volume").unwrap();
    std::fs::write(
        dir.path().join("modules.toml"),
        format!(
            "default_host = \"localhost:3000\"\n\
             [[module]]\nroute = \"/hello/...\"\nmodule = {:?}\n\
             environment = {{ GREETING = \"hi\" }}\nvolumes = {{ \"/data\" = \"data\" }}\n\
             argv = \"prog ${{ARGS}}\"\nhttp_max_concurrency = 4\n\
             allowed_hosts = [\"https://example.com\"]\n\
             [[module]]\nroute = \"/exact\"\nmodule = \"file://{}\"\n",
            cgi(),
            cgi()
        ),
    )
    .unwrap();
    let cache = dir.path().join(".cache");
    let server = Server::start_at(dir.path(), &["--cache-dir", cache.to_str().unwrap()]);
    let reply = server.get("/hello/x?a&b").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(var(&reply.body, "GREETING"), "hi");
    assert_eq!(var(&reply.body, "ARGS"), "[\"prog\", \"a\", \"b\"]");
    assert_eq!(var(&reply.body, "SCRIPT_NAME"), "/hello");
    let reply = server.get("/hello/file").await;
    assert!(reply.body.starts_with("from a volume"), "{}", reply.body);
    let reply = server.get("/exact").await;
    assert_eq!(var(&reply.body, "X_MATCHED_ROUTE"), "/exact");
    assert_eq!(var(&reply.body, "PATH_INFO"), "");
}

#[test]
fn modules_toml_errors_name_the_line_and_key() {
    for (text, key, needle) in [
        (
            "[[module]]\nroute = \"/\"\nmodule = \"bindle:example.com/hello/1.0.0\"\n".to_string(),
            "module[0].module",
            "is a `bindle:` reference",
        ),
        (
            "[[module]]\nroute = \"/\"\nmodule = \"oci:ghcr.io/x/hello:1\"\n".to_string(),
            "module[0].module",
            "is a `oci:` reference",
        ),
        (
            format!("[[module]]\nroute = \"/\"\nmodule = {:?}\nroutes = 1\n", cgi()),
            "module[0]",
            "unknown field `routes`",
        ),
        (
            format!(
                "[[module]]\nroute = \"/a\"\nmodule = {:?}\n[[module]]\nroute = \"/a\"\nmodule = {:?}\n",
                cgi(),
                cgi()
            ),
            "module[1].route",
            "",
        ),
        (
            format!("[[module]]\nroute = \"/\"\nmodule = {:?}\nhttp_max_concurrency = 0\n", cgi()),
            "module[0].http_max_concurrency",
            "at least 1",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("modules.toml");
        std::fs::write(&file, &text).unwrap();
        let mut command = common::kite();
        command
            .args(["up", "--listen", "127.0.0.1:0", "--no-cache", "-f"])
            .arg(&file);
        let stderr = common::expect_failure(command);
        assert!(stderr.contains(key), "{key} in {stderr}");
        assert!(stderr.contains(needle), "{needle} in {stderr}");
    }
}

/// A WAT module writing one fixed text to stdout from each exported function.
fn module_printing(dir: &Path, outputs: &[(&str, &str)]) -> String {
    let mut data = String::new();
    let mut functions = String::new();
    let mut offset = 1024;
    for (name, text) in outputs {
        let escaped = text.replace('\n', "\\0a");
        data += &format!("(data (i32.const {offset}) \"{escaped}\")\n");
        functions += &format!(
            "(func (export \"{name}\") (call $out (i32.const {offset}) (i32.const {})))\n",
            text.len()
        );
        offset += text.len() + 16;
    }
    write_wat(
        dir,
        "routes.wasm",
        &format!(
            r#"(module
                 (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
                 (memory (export "memory") 1)
                 {data}
                 (func $out (param $ptr i32) (param $len i32)
                   (i32.store (i32.const 0) (local.get $ptr))
                   (i32.store (i32.const 4) (local.get $len))
                   (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
                 {functions})"#
        ),
    )
}

/// Wagi's `_routes`: a module lists sub-routes and the functions that serve them.
#[tokio::test]
async fn a_module_declares_its_sub_routes() {
    let dir = tempfile::tempdir().unwrap();
    let module = module_printing(
        dir.path(),
        &[
            ("_routes", "/hello hello\n/bye/... bye\n/plain\n"),
            ("hello", "Content-Type: text/plain\n\nfrom hello"),
            ("bye", "Content-Type: text/plain\n\nfrom bye"),
            ("_start", "Content-Type: text/plain\n\nfrom start"),
        ],
    );
    std::fs::write(
        dir.path().join("modules.toml"),
        format!("[[module]]\nroute = \"/app/...\"\nmodule = {module:?}\n"),
    )
    .unwrap();
    let cache = dir.path().join(".cache");
    let server = Server::start_at(dir.path(), &["--cache-dir", cache.to_str().unwrap()]);
    for (path, body) in [
        ("/app/hello", "from hello"),
        ("/app/bye/and/more", "from bye"),
        ("/app/plain", "from start"),
        ("/app/other", "from start"),
    ] {
        let reply = server.get(path).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, body), "{path}");
    }
    // A route that names a function the module lacks fails the start.
    let bad = module_printing(
        dir.path(),
        &[
            ("_routes", "/x missing\n"),
            ("_start", "Content-Type: a\n\n"),
        ],
    );
    std::fs::write(
        dir.path().join("modules.toml"),
        format!("[[module]]\nroute = \"/...\"\nmodule = {bad:?}\n"),
    )
    .unwrap();
    let mut command = common::kite();
    command
        .args(["up", "--listen", "127.0.0.1:0", "--no-cache", "-f"])
        .arg(dir.path());
    let stderr = common::expect_failure(command);
    assert!(
        stderr.contains("its `_routes` names `missing` for /x"),
        "{stderr}"
    );

    // A program at `/...` cannot take over another route's paths by declaring them.
    let greedy = module_printing(
        dir.path(),
        &[
            ("_routes", "/api/admin\n"),
            ("_start", "Content-Type: a\n\n"),
        ],
    );
    std::fs::write(
        dir.path().join("modules.toml"),
        format!(
            "[[module]]\nroute = \"/...\"\nmodule = {greedy:?}\n\
             [[module]]\nroute = \"/api/...\"\nmodule = {:?}\n",
            cgi()
        ),
    )
    .unwrap();
    let mut command = common::kite();
    command
        .args(["up", "--listen", "127.0.0.1:0", "--no-cache", "-f"])
        .arg(dir.path());
    let stderr = common::expect_failure(command);
    assert!(
        stderr
            .contains("covers paths (such as \"/api/admin\") that another route of the app serves"),
        "{stderr}"
    );
}

/// The same program built for `wasm32-wasip2` is a WASI 0.2 command component
/// (`wasi:cli/run`): a CGI program too, with the same environment, streams and failures.
#[tokio::test]
async fn a_wasi_0_2_command_is_a_cgi_program_too() {
    let app = TestApp::spin(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"wagi\"\n\
         [[trigger.http]]\nroute = \"/cgi/...\"\ncomponent = \"cgi\"\nexecutor = {{ type = \"wagi\" }}\n\
         [component.cgi]\nsource = {:?}\nenvironment = {{ GREETING = \"hej\" }}\n",
        common::guest("cgi").display().to_string()
    ));
    let server = Server::start(&app);
    let (status, text) = server.post("/cgi/some/path?x=1", "component body").await;
    assert_eq!(status, 200, "{text}");
    for (name, value) in [
        ("PATH_INFO", "/some/path"),
        ("SCRIPT_NAME", "/cgi"),
        ("QUERY_STRING", "x=1"),
        ("GREETING", "hej"),
        ("ARGS", "[\"/cgi/some/path\", \"x=1\"]"),
        ("BODY", "component body"),
    ] {
        assert_eq!(var(&text, name), value, "{name}");
    }
    assert_eq!(server.get("/cgi/status").await.status, 201);
    assert_eq!(server.get("/cgi/big").await.body.len(), 8 << 20);
    assert_eq!(server.get("/cgi/exit-early").await.status, 500);
    server.wait_for_log("the program exited with status");
    assert_eq!(server.get("/cgi/trap-early").await.status, 500);
    let reply = server.get("/cgi/exit-late").await;
    assert!(reply.body_failed, "{}", reply.body);
    // A custom entrypoint means nothing to a component: refused at start.
    let custom = TestApp::spin(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"wagi\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"cgi\"\n\
         executor = {{ type = \"wagi\", entrypoint = \"other\" }}\n\
         [component.cgi]\nsource = {:?}\n",
        common::guest("cgi").display().to_string()
    ));
    let stderr = up_fails(&custom, &[]);
    assert!(
        stderr.contains("cannot choose another function"),
        "{stderr}"
    );
}

#[tokio::test]
async fn parameter_routes_and_bodies_of_every_size() {
    let app = TestApp::new(&format!(
        "manifest_version = 1\n[app]\nname = \"wagi\"\n\
         [[route]]\npath = \"/users/:id\"\ncomponent = \"cgi\"\n\
         [component.cgi]\nsource = {:?}\nexecutor = {{ type = \"wagi\" }}\n",
        cgi()
    ));
    let server = Server::start(&app);
    let (status, text) = server.post("/users/42?full", "").await;
    assert_eq!(status, 200, "{text}");
    for (name, value) in [
        ("X_MATCHED_ROUTE", "/users/:id"),
        ("SCRIPT_NAME", "/users/:id"),
        ("PATH_INFO", ""),
        ("QUERY_STRING", "full"),
        ("CONTENT_LENGTH", "0"),
        ("BODY", ""),
    ] {
        assert_eq!(var(&text, name), value, "{name}");
    }
    let big = "z".repeat(1 << 20);
    let (status, text) = server.post("/users/7", &big).await;
    assert_eq!(status, 200);
    assert_eq!(var(&text, "CONTENT_LENGTH"), "1048576");
    assert_eq!(var(&text, "BODY").len(), 1 << 20);
}

/// 100 MiB of output streams through; the server holds a bounded part of it.
#[tokio::test]
async fn a_huge_answer_streams_in_bounded_memory() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(&spin_app(""));
    // Warm up, then measure what the server holds while the answer streams.
    assert_eq!(server.get("/cgi/status").await.status, 201);
    let before = common::rss_bytes(server.pid());
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /cgi/huge HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let (mut total, mut peak) = (0usize, before);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
        if total % (8 << 20) < n {
            peak = peak.max(common::rss_bytes(server.pid()));
        }
    }
    assert!(total > 100 << 20, "{total} bytes");
    let grown = peak.saturating_sub(before);
    assert!(grown < 48 << 20, "the server grew by {grown} bytes");
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_at_the_limit_and_others_go_on() {
    let app = TestApp::new(&format!(
        "manifest_version = 1\n[app]\nname = \"wagi\"\n\
         [[route]]\npath = \"/cgi/...\"\ncomponent = \"cgi\"\n\
         [component.cgi]\nsource = {:?}\nexecutor = {{ type = \"wagi\" }}\n\
         [component.cgi.limits]\nmemory = \"32MiB\"\n",
        cgi()
    ));
    let server = Server::start(&app);
    let reply = server.get("/cgi/bomb").await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    server.wait_for_log("the component trapped");
    assert_eq!(server.get("/cgi/status").await.status, 201);
}

#[tokio::test]
async fn files_are_read_only_and_wagi_volumes_writable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let kite = format!(
        "manifest_version = 1\n[app]\nname = \"wagi\"\n\
         [[route]]\npath = \"/cgi/...\"\ncomponent = \"cgi\"\nexecutor = {{ type = \"wagi\" }}\n\
         [component.cgi]\nsource = {:?}\nfiles = [{{ source = \"data\", destination = \"/data\" }}]\n",
        cgi()
    );
    std::fs::write(dir.path().join("kite.toml"), kite).unwrap();
    let cache = dir.path().join(".cache");
    let server = Server::start_at(dir.path(), &["--cache-dir", cache.to_str().unwrap()]);
    let reply = server.get("/cgi/write").await;
    assert!(reply.body.starts_with("Err("), "{}", reply.body);
    assert!(!dir.path().join("data/written.txt").exists());
    drop(server);

    std::fs::remove_file(dir.path().join("kite.toml")).unwrap();
    std::fs::write(
        dir.path().join("modules.toml"),
        format!(
            "[[module]]\nroute = \"/cgi/...\"\nmodule = {:?}\nvolumes = {{ \"/data\" = \"data\" }}\n",
            cgi()
        ),
    )
    .unwrap();
    let server = Server::start_at(dir.path(), &["--cache-dir", cache.to_str().unwrap()]);
    let reply = server.get("/cgi/write").await;
    assert_eq!(reply.body, "Ok(())");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/written.txt")).unwrap(),
        "written by cgi"
    );
}

/// kite.toml, spin.toml and modules.toml serve one module the same way.
#[tokio::test]
async fn the_three_front_doors_serve_a_module_alike() {
    let module = cgi();
    let manifests = [
        (
            "kite.toml",
            format!(
                "manifest_version = 1\n[app]\nname = \"wagi\"\n\
                 [[route]]\npath = \"/cgi/...\"\ncomponent = \"cgi\"\nexecutor = {{ type = \"wagi\" }}\n\
                 [component.cgi]\nsource = {module:?}\n"
            ),
        ),
        (
            "spin.toml",
            format!(
                "spin_manifest_version = 2\n[application]\nname = \"wagi\"\n\
                 [[trigger.http]]\nroute = \"/cgi/...\"\ncomponent = \"cgi\"\nexecutor = {{ type = \"wagi\" }}\n\
                 [component.cgi]\nsource = {module:?}\n"
            ),
        ),
        (
            "modules.toml",
            format!("[[module]]\nroute = \"/cgi/...\"\nmodule = {module:?}\n"),
        ),
    ];
    let mut pages = Vec::new();
    for (name, manifest) in manifests {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), manifest).unwrap();
        let cache = dir.path().join(".cache");
        let server = Server::start_at(dir.path(), &["--cache-dir", cache.to_str().unwrap()]);
        let request = http::Request::post("/cgi/a/b?x=1")
            .header("host", "example.com")
            .body(Full::new(Bytes::from("same body")))
            .unwrap();
        let reply = send_request(server.addr, request).await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.body);
        // The client's port differs from run to run.
        let page: Vec<String> = reply
            .body
            .lines()
            .filter(|line| !line.starts_with("X_CLIENT_ADDR="))
            .map(str::to_string)
            .collect();
        pages.push((name, page));
    }
    for (name, page) in &pages[1..] {
        assert_eq!(page, &pages[0].1, "{name} against {}", pages[0].0);
    }
}
