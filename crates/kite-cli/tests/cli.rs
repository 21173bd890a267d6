//! The `kite` binary end to end: manifest and wasm errors before listening, the compile
//! cache, graceful shutdown, `kite new` + `kite build`, and the build-target hint.

mod common;
use common::{kite, up_fails, Server, TestApp};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

#[test]
fn manifest_errors_stop_kite_up_with_file_line_and_key() {
    let app = TestApp::probe("[component.x]\nsource = \"PROBE\"\nlimits = { memory = \"lots\" }\n");
    let err = up_fails(&app, &[]);
    assert!(err.contains("kite.toml:6:"), "{err}");
    assert!(
        err.contains("`component.x.limits.memory`: invalid size \"lots\""),
        "{err}"
    );

    let app = TestApp::probe("[[route]]\npath = \"/\"\ncomponent = \"ghost\"\n");
    let err = up_fails(&app, &[]);
    assert!(
        err.contains("`route[0].component`") && err.contains("\"ghost\", which is not defined"),
        "{err}"
    );

    let app = TestApp::probe("[component.x]\nsource = \"missing.wasm\"\n");
    let err = up_fails(&app, &[]);
    assert!(
        err.contains("`component.x.source`") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn files_that_are_not_components_are_explained() {
    let app = TestApp::probe("[component.x]\nsource = \"module.wasm\"\n");
    // The smallest valid core module (magic and version 1) is made a component, which
    // then exports no handler.
    std::fs::write(app.path().join("module.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let err = up_fails(&app, &[]);
    assert!(err.contains("is not an HTTP handler"), "{err}");
    // A core module that cannot be made a component says why and what to build instead.
    std::fs::write(app.path().join("module.wasm"), b"\0asm\x01\0\0\0\x01\x02").unwrap();
    let err = up_fails(&app, &[]);
    assert!(err.contains("core WebAssembly module"), "{err}");
    assert!(err.contains("spin-sdk 3"), "{err}");

    std::fs::write(app.path().join("module.wasm"), b"not wasm at all").unwrap();
    let err = up_fails(&app, &[]);
    assert!(err.contains("is not a WebAssembly file"), "{err}");

    std::fs::write(app.path().join("module.wasm"), b"\0asm\x0d\0\x01\0garbage").unwrap();
    let err = up_fails(&app, &[]);
    assert!(err.contains("is not a valid component"), "{err}");
}

#[test]
fn an_import_kite_does_not_host_is_named() {
    let app = TestApp::new(&format!(
        "manifest_version = 1\n[app]\nname = \"t\"\n[component.x]\nsource = \"{}\"\n",
        common::guest("unhosted").display()
    ));
    let err = up_fails(&app, &[]);
    assert!(err.contains("component `x`"), "{err}");
    assert!(err.contains("kite-test:unhosted/telepathy"), "{err}");
}

#[test]
fn the_second_start_uses_the_compile_cache() {
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"x\"\n[component.x]\nsource = \"PROBE\"\n",
    );
    let cache = app.path().join("cache");
    let args = ["--cache-dir", cache.to_str().unwrap()];
    {
        let server = Server::start_with(&app, &args);
        let log = server.wait_for_log("component `x` compiled");
        assert!(log.contains("component `x` compiled"), "{log}");
    }
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    let server = Server::start_with(&app, &args);
    let log = server.wait_for_log("component `x` loaded from cache");
    assert!(log.contains("component `x` loaded from cache"), "{log}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(runtime.block_on(server.get("/")).body, "Hello from Kite");
}

#[test]
fn ctrl_c_lets_an_in_flight_request_finish_then_exits_0() {
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"x\"\n[component.x]\nsource = \"PROBE\"\n",
    );
    let mut server = Server::start(&app);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr = server.addr;
    let in_flight = runtime.spawn(common::send(
        addr,
        http::Method::GET,
        "/sleep?ms=1500",
        bytes::Bytes::new(),
    ));
    std::thread::sleep(Duration::from_millis(400));
    server.signal("INT");
    let reply = runtime.block_on(in_flight).unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "slept 1500 ms"));
    assert_eq!(
        server.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        server.log()
    );
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer accepting"
    );
}

#[test]
fn a_second_ctrl_c_stops_at_once() {
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"x\"\n[component.x]\nsource = \"PROBE\"\n",
    );
    let mut server = Server::start(&app);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _in_flight = runtime.spawn(common::send(
        server.addr,
        http::Method::GET,
        "/sleep?ms=20000",
        bytes::Bytes::new(),
    ));
    std::thread::sleep(Duration::from_millis(300));
    server.signal("INT");
    server.wait_for_log("Ctrl-C again");
    server.signal("INT");
    assert_eq!(
        server.wait_exit(Duration::from_secs(5)),
        Some(130),
        "{}",
        server.log()
    );
}

#[test]
fn without_address_space_for_the_pool_kite_falls_back_and_still_serves() {
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"x\"\n[component.x]\nsource = \"PROBE\"\n",
    );
    // 16 GiB of address space: far too little for a pool of 1000 instances.
    let server = Server::start_with_address_space_limit(&app, 16 << 20);
    let log = server.wait_for_log("pooling allocator unavailable");
    assert!(log.contains("using on-demand instance allocation"), "{log}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(runtime.block_on(server.get("/")).body, "Hello from Kite");
}

#[test]
fn help_and_version() {
    let output = kite().arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("kite "));
    for command in ["up", "build", "new"] {
        let output = kite().args([command, "--help"]).output().unwrap();
        assert!(output.status.success());
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage: kite"));
    }
}

#[test]
fn a_missing_rust_target_names_the_rustup_command() {
    let app = TestApp::probe(
        "[component.x]\nsource = \"x.wasm\"\nbuild = { command = \"cargo build --target wasm32-wasip2 --release\" }\n",
    );
    let fake_rustc = app.path().join("fake-rustc");
    std::fs::write(
        &fake_rustc,
        format!("#!/bin/sh\necho {}\n", app.path().display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake_rustc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = kite()
        .args(["build", "-f"])
        .arg(app.path())
        .env("RUSTC", &fake_rustc)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("rustup target add wasm32-wasip2"),
        "{stderr}"
    );
}

/// `kite new <template>`, `kite build`, then `kite up`: the app answers "Hello from Kite".
fn new_build_and_serve(template: &str) {
    let work = tempfile::tempdir().unwrap();
    let app_dir = work.path().join("hello");
    new_app(template, "hello", &app_dir);
    let again = kite()
        .args(["new", template, "hello", "--output"])
        .arg(&app_dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "refuses to overwrite");

    let server = common::build_and_serve(&app_dir, &work.path().join("cache"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let reply = runtime.block_on(server.get("/"));
    assert_eq!(reply.body, "Hello from Kite\n");
    server.wait_for_log("handling /");
}

#[test]
fn new_then_build_then_up_serves_the_rust_template() {
    // WASI 0.3, as Spin 4's own Rust template.
    new_build_and_serve("http-rust");
}

#[test]
fn new_then_build_then_up_serves_the_rust_wasi_0_2_template() {
    new_build_and_serve("http-rust-p2");
}

#[test]
fn the_python_template_builds_with_componentize_py_and_serves() {
    // componentize-py and Spin's Python SDK as the README has them installed, from the
    // tools directory instead of a virtual environment.
    let tools = common::guest_tools("python").join("python");
    let work = tempfile::tempdir().unwrap();
    let app_dir = work.path().join("py-hello");
    new_app("http-python", "py-hello", &app_dir);
    let path = format!(
        "{}:{}",
        tools.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = up_with_build(&app_dir, &work.path().join("cache"));
    command.env("PATH", path).env("PYTHONPATH", &tools);
    let server = Server::spawn(command);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let reply = runtime.block_on(server.get("/there"));
    assert_eq!(reply.body, "Hello from Kite at /there\n");
}

#[test]
fn the_javascript_template_builds_with_npm_and_serves() {
    let work = tempfile::tempdir().unwrap();
    let app_dir = work.path().join("js-hello");
    new_app("http-js", "js-hello", &app_dir);
    let command = up_with_build(&app_dir, &work.path().join("cache"));
    let server = Server::spawn(command);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let reply = runtime.block_on(server.get("/there"));
    assert_eq!(reply.body, "Hello from Kite at /there\n");
}

/// `kite new <template> <name> --output <dir>`, which must succeed.
fn new_app(template: &str, name: &str, dir: &std::path::Path) {
    let output = kite()
        .args(["new", template, name, "--output"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `kite up --build` for the app in `dir` on a port the OS chooses, caching in `cache`.
fn up_with_build(dir: &std::path::Path, cache: &std::path::Path) -> std::process::Command {
    let mut command = kite();
    command
        .args(["up", "--build", "--listen", "127.0.0.1:0", "--cache-dir"])
        .arg(cache)
        .arg("-f")
        .arg(dir);
    command
}
