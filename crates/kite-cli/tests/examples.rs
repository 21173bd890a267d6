//! The apps in examples/ work as their READMEs say: each is built from source (sharing the
//! test guests' target directory, so dependencies compile once) and served by `kite up`.

mod common;
use common::{kite, send, Server, TestApp};

/// Builds `examples/<name>` for wasm32-wasip2 and returns an app directory holding its
/// manifest with `source` pointing at the built component.
fn example(name: &str) -> TestApp {
    let dir = common::repo_root().join("examples").join(name);
    let built = common::build_wasm(&dir);
    let manifest = std::fs::read_to_string(dir.join("kite.toml")).unwrap();
    let manifest = manifest.replace(
        "source = \"target/wasm32-wasip2/release/",
        &format!("source = \"{}/", built.display()),
    );
    TestApp::new(&manifest)
}

#[tokio::test]
async fn hello_rust_greets() {
    let app = example("hello-rust");
    let server = Server::start(&app);
    let reply = server.get("/anything").await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("Hello from Kite"), "{}", reply.body);
}

#[tokio::test]
async fn hello_p3_greets_as_a_wasi_0_3_handler() {
    let app = example("hello-p3");
    let server = Server::start(&app);
    let reply = server.get("/anything").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "Hello from Kite\n");
    assert_eq!(reply.header("content-type"), Some("text/plain"));
}

#[tokio::test]
async fn polyglot_chains_rust_python_and_javascript_with_only_their_grants() {
    // Built as its README says (`kite up --build`); the Python and JavaScript toolchains
    // come from scripts/guest-tools.sh.
    let dir = common::repo_root().join("examples/polyglot");
    let cache = tempfile::tempdir().unwrap();
    let mut command = kite();
    command
        .args(["up", "--build", "--listen", "127.0.0.1:0", "--cache-dir"])
        .arg(cache.path())
        .arg("-f")
        .arg(&dir);
    let server = Server::spawn(command);
    let text = "the cat sat on the mat. The cat ran!";
    let request = |token: Option<&str>| {
        let mut builder = http::Request::post("/report").header("host", "localhost");
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder
            .body(http_body_util::Full::new(bytes::Bytes::from(text)))
            .unwrap()
    };
    let page = common::send_request(server.addr, request(Some("let-me-in"))).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.body.contains("<p>9 words on 1 lines.</p>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<tr><td>the</td><td>3</td></tr>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<tr><td>cat</td><td>2</td></tr>"),
        "{}",
        page.body
    );

    for token in [None, Some("wrong")] {
        let refused = common::send_request(server.addr, request(token)).await;
        assert_eq!(refused.status, 401, "{refused:?}");
    }
    // The Python and JavaScript components have no public route.
    let usage = server.get("/transform").await;
    assert!(usage.body.starts_with("POST some text"), "{usage:?}");
}

#[tokio::test]
async fn outbound_rust_reaches_the_allowed_host_and_is_refused_the_other() {
    let app = example("outbound-rust");
    // The manifest names the server's own address, so serve on a port known in advance.
    let port = common::free_port();
    let manifest_path = app.path().join("kite.toml");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(
        &manifest_path,
        manifest.replace("127.0.0.1:3000", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    let mut command = kite();
    command
        .args([
            "up",
            "--no-cache",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "-f",
        ])
        .arg(app.path());
    let server = Server::spawn(command);
    let allowed = server.get("/fetch/allowed").await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert!(
        allowed.body.contains("/upstream -> 200"),
        "{}",
        allowed.body
    );
    let denied = server.get("/fetch/denied").await;
    assert!(
        denied.body.contains("https://example.com/ was denied"),
        "{}",
        denied.body
    );
    let hint = "add \"https://example.com\" to `allowed_outbound_hosts` of component `fetcher`";
    let log = server.wait_for_log(hint);
    assert!(log.contains(hint), "{log}");
}

#[tokio::test]
async fn kv_counter_rust_counts_every_visit() {
    let app = example("kv-counter-rust");
    let server = Server::start(&app);
    assert_eq!(server.get("/").await.body, "visit number 1\n");
    assert_eq!(server.get("/").await.body, "visit number 2\n");
    let visits: Vec<_> = (0..40)
        .map(|_| {
            let addr = server.addr;
            tokio::spawn(
                async move { send(addr, http::Method::GET, "/", Default::default()).await },
            )
        })
        .collect();
    for visit in visits {
        assert_eq!(visit.await.unwrap().status, 200);
    }
    assert_eq!(server.get("/").await.body, "visit number 43\n");
}

#[tokio::test]
async fn todo_sqlite_rust_keeps_todos() {
    let app = example("todo-sqlite-rust");
    let server = Server::start(&app);
    let post = |path: &'static str, body: &'static str| {
        send(server.addr, http::Method::POST, path, body.into())
    };
    let created = post("/todos", r#"{"title":"write docs"}"#).await;
    assert_eq!(
        (created.status, created.body.as_str()),
        (201, r#"{"id":1,"title":"write docs","done":false}"#)
    );
    post("/todos", r#"{"title":"ship"}"#).await;
    assert_eq!(post("/todos/1/done", "").await.body, r#"{"id":1}"#);
    let deleted = send(
        server.addr,
        http::Method::DELETE,
        "/todos/2",
        Default::default(),
    )
    .await;
    assert_eq!(deleted.body, r#"{"id":2}"#);
    let list = server.get("/todos").await;
    assert_eq!(
        (list.status, list.body.as_str()),
        (200, r#"[{"id":1,"title":"write docs","done":true}]"#)
    );
    let bad = post("/todos", "not json").await;
    assert_eq!(bad.status, 400, "{}", bad.body);
}

#[tokio::test]
async fn spin_app_is_served_unchanged_from_its_spin_toml() {
    let dir = common::repo_root().join("examples/spin-app");
    let built = common::build_wasm_for(&dir, "wasm32-wasip1");
    let manifest = std::fs::read_to_string(dir.join("spin.toml")).unwrap();
    let manifest = manifest.replace(
        "source = \"target/wasm32-wasip1/release/",
        &format!("source = \"{}/", built.display()),
    );
    let app = TestApp::spin(&manifest);
    let mut command = kite();
    command
        .env("SPIN_VARIABLE_GREETING", "Howdy")
        .args(["up", "--no-cache", "--listen", "127.0.0.1:0", "-f"])
        .arg(app.path());
    let server = Server::spawn(command);
    assert_eq!(server.get("/hello/kite").await.body, "Howdy, kite!\n");
    assert_eq!(server.get("/visits").await.body, "visits: 1\n");
    assert_eq!(server.get("/visits").await.body, "visits: 2\n");
    let place = server.get("/where").await.body;
    assert!(place.contains("path info: /where"), "{place}");
    assert_eq!(server.get("/nowhere").await.status, 404);
    assert!(app.path().join(".spin/sqlite_key_value.db").is_file());
}

/// A copy of `examples/<name>`'s modules.toml in a fresh directory, with its module path
/// replaced by `module`.
fn wagi_app(name: &str, from: &str, module: &std::path::Path) -> tempfile::TempDir {
    let dir = common::repo_root().join("examples").join(name);
    let manifest = std::fs::read_to_string(dir.join("modules.toml"))
        .unwrap()
        .replace(from, &module.display().to_string());
    let app = tempfile::tempdir().unwrap();
    std::fs::write(app.path().join("modules.toml"), manifest).unwrap();
    app
}

#[tokio::test]
async fn wagi_rust_prints_its_cgi_environment() {
    let dir = common::repo_root().join("examples/wagi-rust");
    let built = common::build_wasm_for(&dir, "wasm32-wasip1");
    let app = wagi_app(
        "wagi-rust",
        "target/wasm32-wasip1/release/wagi-rust.wasm",
        &built.join("wagi-rust.wasm"),
    );
    let server = Server::start_at(app.path(), &["--no-cache"]);
    let (status, page) = server.post("/env/a/b?x=1&y=2", "some body").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<h1>Hello from a CGI program</h1>"), "{page}");
    assert!(
        page.contains("POST /env (path info <code>/a/b</code>, query <code>x=1&amp;y=2</code>)"),
        "{page}"
    );
    assert!(
        page.contains("<code>GREETING=hello from modules.toml</code>"),
        "{page}"
    );
    assert!(
        page.contains("<h2>Body (9 bytes)</h2><pre>some body</pre>"),
        "{page}"
    );
}

#[tokio::test]
async fn wagi_c_is_plain_printf() {
    let dir = common::repo_root().join("examples/wagi-c");
    let out = tempfile::tempdir().unwrap();
    let module = out.path().join("page.wasm");
    let built = std::process::Command::new("clang")
        .args(["--target=wasm32-wasi", "-O2", "-Wall", "-o"])
        .arg(&module)
        .arg(dir.join("page.c"))
        .output()
        .expect("running clang (install it with `apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32`)");
    assert!(
        built.status.success(),
        "building page.c failed (`apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32`):\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let app = wagi_app("wagi-c", "page.wasm", &module);
    let server = Server::start_at(app.path(), &["--no-cache"]);
    let (status, page) = server.post("/some/path?x=1", "hello <b>").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<h1>Hello from C</h1>\n<p>POST /some/path</p>"),
        "{page}"
    );
    assert!(
        page.contains("<li><code>QUERY_STRING=x=1</code></li>"),
        "{page}"
    );
    assert!(
        page.contains("<pre>hello &lt;b&gt;</pre><p>9 bytes</p>"),
        "{page}"
    );
}
