//! Spin apps served unchanged: spin.toml (versions 2 and 1) over a real server, with Spin's
//! request headers, static responses, private routes, files, state and variables.

mod common;
use common::{send_request, up_fails, Server, TestApp};
use http_body_util::Full;

const V2_HEADER: &str = "spin_manifest_version = 2\n[application]\nname = \"spin-test\"\n";

/// The `spin-*` headers the probe saw, as `name: value` lines in order.
fn spin_headers(info: &str) -> Vec<String> {
    info.lines()
        .filter_map(|line| line.strip_prefix("header "))
        .filter(|line| line.starts_with("spin-"))
        .map(str::to_string)
        .collect()
}

fn routes_app() -> TestApp {
    TestApp::spin(&format!(
        "{V2_HEADER}
[application.trigger.http]
base = \"/\"

[[trigger.http]]
route = \"/info\"
component = \"probe\"

[[trigger.http]]
route = \"/api/...\"
component = \"probe\"

[[trigger.http]]
route = \"/users/:user_id/info\"
component = \"probe\"

[[trigger.http]]
route = \"/moved\"
static_response = {{ status_code = 301, headers = {{ location = \"/info\" }}, body = \"gone\" }}

[[trigger.http]]
route = {{ private = true }}
component = \"hidden\"

[component.probe]
source = \"PROBE\"

[component.hidden]
source = \"PROBE\"
environment = {{ ROLE = \"hidden\" }}
"
    ))
}

#[tokio::test]
async fn the_guest_gets_spins_request_headers() {
    let app = routes_app();
    let server = Server::start(&app);
    let host = server.addr.to_string();
    let client = |line: &str| line.starts_with("spin-client-addr: 127.0.0.1:");
    for (path, expected) in [
        (
            "/info?x=1",
            vec![
                "spin-path-info: ".to_string(),
                format!("spin-full-url: http://{host}/info?x=1"),
                "spin-matched-route: /info".into(),
                "spin-base-path: /".into(),
                "spin-raw-component-route: /info".into(),
                "spin-component-route: /info".into(),
            ],
        ),
        (
            "/api/a/b/info?q",
            vec![
                "spin-path-info: /a/b/info".to_string(),
                format!("spin-full-url: http://{host}/api/a/b/info?q"),
                "spin-matched-route: /api/...".into(),
                "spin-base-path: /".into(),
                "spin-raw-component-route: /api/...".into(),
                "spin-component-route: /api".into(),
            ],
        ),
        (
            "/users/42/info",
            vec![
                "spin-path-info: ".to_string(),
                format!("spin-full-url: http://{host}/users/42/info"),
                "spin-matched-route: /users/:user_id/info".into(),
                "spin-base-path: /".into(),
                "spin-raw-component-route: /users/:user_id/info".into(),
                "spin-component-route: /users/:user_id/info".into(),
                "spin-path-match-user-id: 42".into(),
            ],
        ),
    ] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        let mut seen = spin_headers(&reply.body);
        let position = seen.iter().position(|l| client(l));
        assert!(
            position.is_some(),
            "{path}: no spin-client-addr in {seen:?}"
        );
        seen.remove(position.unwrap());
        let mut expected = expected;
        seen.sort();
        expected.sort();
        assert_eq!(seen, expected, "{path}");
        // A Spin app's response carries the guest's headers and framing only.
        assert!(reply.header("x-kite-request-id").is_none(), "{path}");
    }
}

#[tokio::test]
async fn headers_a_client_sends_in_spins_names_are_replaced() {
    let app = routes_app();
    let server = Server::start(&app);
    let request = http::Request::builder()
        .uri("/info")
        .header("host", server.addr.to_string())
        .header("spin-client-addr", "10.9.8.7:1")
        .header("spin-path-match-admin", "yes")
        .header("Spin-Full-Url", "http://evil.example/")
        .body(Full::new(bytes::Bytes::new()))
        .unwrap();
    let reply = send_request(server.addr, request).await;
    let seen = spin_headers(&reply.body);
    assert!(
        !reply.body.contains("10.9.8.7")
            && !reply.body.contains("evil.example")
            && !reply.body.contains("path-match-admin"),
        "{seen:?}"
    );
    assert_eq!(
        seen.iter()
            .filter(|l| l.starts_with("spin-full-url"))
            .count(),
        1
    );
}

#[tokio::test]
async fn static_responses_and_private_routes() {
    let app = routes_app();
    let server = Server::start(&app);
    let moved = server.get("/moved").await;
    assert_eq!(moved.status, 301);
    assert_eq!(moved.header("location"), Some("/info"));
    assert_eq!(moved.body, "gone");
    // A private route is not routed from outside; the route table does not list it.
    let banner = server.stdout();
    assert!(!banner.contains("hidden"), "{banner}");
    assert!(banner.contains("(static response)"), "{banner}");
    assert_eq!(server.get("/hidden/env").await.status, 404);
}

#[tokio::test]
async fn files_are_copied_read_only_with_exclusions() {
    let app = TestApp::spin(&format!(
        "{V2_HEADER}
[[trigger.http]]
route = \"/...\"
component = \"files\"

[component.files]
source = \"PROBE\"
files = [\"static/**/*\", {{ source = \"assets\", destination = \"/assets\" }}, \"notes.txt\"]
exclude_files = [\"static/private/*\"]
"
    ));
    let root = app.path();
    for (file, text) in [
        ("static/index.html", "index"),
        ("static/css/site.css", "css"),
        ("static/private/key.pem", "secret"),
        ("assets/logo.svg", "logo"),
        ("notes.txt", "notes"),
    ] {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let server = Server::start(&app);
    for (guest_path, expected) in [
        ("/static/index.html", Some("index")),
        ("/static/css/site.css", Some("css")),
        ("/static/private/key.pem", None),
        ("/assets/logo.svg", Some("logo")),
        ("/notes.txt", Some("notes")),
        ("/spin.toml", None),
    ] {
        let reply = server.get(&format!("/read?path={guest_path}")).await;
        match expected {
            Some(text) => assert_eq!(reply.body, text, "{guest_path}"),
            None => assert_ne!(reply.status, 200, "{guest_path}: {}", reply.body),
        }
    }
    // What the guest sees is a copy: read-only, and unchanged by later edits.
    let write = server.get("/write?path=/notes.txt&value=changed").await;
    assert_ne!(write.status, 200, "{}", write.body);
    std::fs::write(root.join("notes.txt"), "edited").unwrap();
    assert_eq!(server.get("/read?path=/notes.txt").await.body, "notes");
}

#[tokio::test]
async fn a_spin_app_finds_its_data_where_spin_up_left_it() {
    let app = TestApp::spin(&format!(
        "{V2_HEADER}
[[trigger.http]]
route = \"/...\"
component = \"store\"

[component.store]
source = \"PROBE\"
key_value_stores = [\"default\"]
"
    ));
    // The default store as `spin up` writes it.
    let state = app.path().join(".spin");
    std::fs::create_dir_all(&state).unwrap();
    let spin = rusqlite::Connection::open(state.join("sqlite_key_value.db")).unwrap();
    spin.execute_batch(
        "CREATE TABLE spin_key_value (store TEXT NOT NULL, key TEXT NOT NULL,
           value BLOB NOT NULL, PRIMARY KEY (store, key));
         INSERT INTO spin_key_value VALUES ('default', 'left-by-spin', x'7370696e');",
    )
    .unwrap();
    drop(spin);
    let server = Server::start(&app);
    let reply = server
        .get("/kv?label=default&op=get&key=left-by-spin")
        .await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "spin"));
    let set = server.get("/kv?label=default&op=set&key=k&value=v").await;
    assert_eq!(set.status, 200, "{}", set.body);
    drop(server);
    let spin = rusqlite::Connection::open(state.join("sqlite_key_value.db")).unwrap();
    let value: Vec<u8> = spin
        .query_row(
            "SELECT value FROM spin_key_value WHERE store = 'default' AND key = 'k'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(value, b"v");
}

#[tokio::test]
async fn spin_variables_env_and_seeds_from_the_command_line() {
    let app = TestApp::spin(&format!(
        "{V2_HEADER}
[variables]
api_host = {{ required = true }}

[[trigger.http]]
route = \"/...\"
component = \"probe\"

[component.probe]
source = \"PROBE\"
key_value_stores = [\"default\"]
environment = {{ FROM_MANIFEST = \"manifest\", OVERRIDDEN = \"manifest\" }}
variables = {{ host = \"https://{{{{ api_host }}}}\" }}
"
    ));
    let cache = app.path().join(".cache");
    let mut command = common::kite();
    command
        .env("SPIN_VARIABLE_API_HOST", "api.example.com")
        .args(["up", "--listen", "127.0.0.1:0", "--from"])
        .arg(app.path())
        .args(["--cache-dir", cache.to_str().unwrap()])
        .args(["-e", "OVERRIDDEN=flag", "--env", "ADDED=flag"])
        .args(["--key-value", "seeded=yes"]);
    let server = Server::spawn(command);
    assert_eq!(
        server.get("/spin-variable?name=host").await.body,
        "https://api.example.com"
    );
    let env = server.get("/env").await.body;
    for line in ["FROM_MANIFEST=manifest", "OVERRIDDEN=flag", "ADDED=flag"] {
        assert!(env.lines().any(|l| l == line), "{line} in {env}");
    }
    assert_eq!(
        server.get("/kv?label=default&op=get&key=seeded").await.body,
        "yes"
    );
}

#[tokio::test]
async fn version_1_manifests_load_into_the_same_model() {
    let app = TestApp::spin(
        "spin_manifest_version = \"1\"
name = \"old-app\"
version = \"1.0.0\"
trigger = { type = \"http\", base = \"/\" }

[variables]
who = { default = \"v1\" }

[[component]]
id = \"old_style\"
source = \"PROBE\"
[component.trigger]
route = \"/old/...\"
[component.config]
who = \"{{ who }}\"
",
    );
    let server = Server::start(&app);
    let reply = server.get("/old/spin-variable?name=who").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "v1"));
    let info = server.get("/old/info").await.body;
    assert!(
        spin_headers(&info).contains(&"spin-raw-component-route: /old/...".to_string()),
        "{info}"
    );
    // Spin's id conversion: `old_style` is served as `old-style`.
    assert!(server.stdout().contains("old-style"), "{}", server.stdout());
}

#[test]
fn spin_manifest_errors_name_the_line_and_key() {
    for (manifest, key, line, needle) in [
        (
            format!("{V2_HEADER}[application.trigger.http]\nbase = \"/api\"\n[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\n[component.a]\nsource = \"PROBE\"\n"),
            "`application.trigger.http.base`",
            ":5:",
            "prepend the base",
        ),
        (
            format!("{V2_HEADER}[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\nexecutor = {{ type = \"wagi\", entrypoint = 3 }}\n[component.a]\nsource = \"PROBE\"\n"),
            "`trigger.http[0].executor`",
            ":7:",
            "`entrypoint` must be a string",
        ),
        (
            format!("{V2_HEADER}[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\n[component.a]\nsource = \"PROBE\"\nai_models = [\"llama2-chat\"]\n"),
            "`component.a.ai_models`",
            ":9:",
            "no AI models",
        ),
        (
            format!("{V2_HEADER}[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\n[component.a]\nsource = \"PROBE\"\n[component.a.tool.kite.limits]\nmemory = \"1KiB\"\n"),
            "`component.a.tool.kite.limits.memory`",
            ":8:",
            "at least 1MiB",
        ),
        (
            format!("{V2_HEADER}[[trigger.redis]]\nchannel = \"x\"\ncomponent = \"a\"\n[component.a]\nsource = \"PROBE\"\n"),
            "`trigger.redis`",
            ":",
            "HTTP triggers only",
        ),
        (
            format!("{V2_HEADER}[[trigger.http]]\nroute = \"/\"\ncomponent = \"missing\"\n"),
            "`trigger.http[0].component`",
            ":6:",
            "not defined",
        ),
        (
            format!("{V2_HEADER}[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\n[component.a]\nsource = \"PROBE\"\nfiles = [\"nothing-here.txt\"]\n"),
            "`component.a.files[0]`",
            ":9:",
            "does not exist",
        ),
        (
            format!("{V2_HEADER}[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\n[component.a]\nsource = \"PROBE\"\nfiles = [\"**/*\"]\n"),
            "`component.a.files[0]`",
            ":9:",
            "the manifest",
        ),
    ] {
        let app = TestApp::spin(&manifest);
        let stderr = up_fails(&app, &[]);
        assert!(stderr.contains("spin.toml"), "{stderr}");
        assert!(stderr.contains(key), "{key}: {stderr}");
        assert!(stderr.contains(line), "{line}: {stderr}");
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
}

fn chaining_app(front_rules: &str) -> TestApp {
    TestApp::spin(&format!(
        "{V2_HEADER}
[[trigger.http]]
route = \"/front/...\"
component = \"front\"

[[trigger.http]]
route = \"/info\"
component = \"public\"

[[trigger.http]]
route = {{ private = true }}
component = \"hidden\"

[component.front]
source = \"PROBE\"
allowed_outbound_hosts = [{front_rules}]

[component.public]
source = \"PROBE\"

[component.hidden]
source = \"PROBE\"
environment = {{ ROLE = \"hidden\" }}
"
    ))
}

#[tokio::test]
async fn components_call_each_other_in_process() {
    let app = chaining_app("\"http://*.spin.internal\", \"http://self\"");
    let server = Server::start(&app);
    // A private component, reached by name, with Spin's headers for a chained request.
    let reply = server
        .get("/front/outbound?url=http://hidden.spin.internal/deep/path/info")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.starts_with("status: 200"), "{}", reply.body);
    let seen = spin_headers(&reply.body);
    for expected in [
        "spin-full-url: http://localhost/deep/path/info",
        "spin-path-info: /deep/path/info",
        "spin-matched-route: /...",
        "spin-raw-component-route: /...",
        "spin-component-route: ",
        "spin-client-addr: 0.0.0.0:0",
    ] {
        assert!(seen.iter().any(|l| l == expected), "{expected} in {seen:?}");
    }
    let env = server
        .get("/front/outbound?url=http://hidden.spin.internal/env")
        .await;
    assert!(env.body.contains("ROLE=hidden"), "{}", env.body);
    // `self` goes through the app's public routes.
    let own = server.get("/front/outbound?url=http://self/info").await;
    assert!(own.body.starts_with("status: 200"), "{}", own.body);
    assert!(
        own.body.contains("spin-matched-route: /info"),
        "{}",
        own.body
    );
    // A component that no trigger targets, or that does not exist, is not reachable.
    let missing = server
        .get("/front/outbound?url=http://nobody.spin.internal/")
        .await;
    assert!(
        missing.body.contains("HttpRequestDenied"),
        "{}",
        missing.body
    );
    server.wait_for_log("the app has no component `nobody` with a route");
    // Nothing went over the network: the access log shows the chained requests as served.
    assert!(
        server.log().contains("component=hidden"),
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn chaining_needs_a_rule_and_is_bounded_in_depth() {
    let app = chaining_app("\"http://front.spin.internal\"");
    let server = Server::start(&app);
    let denied = server
        .get("/front/outbound?url=http://hidden.spin.internal/env")
        .await;
    assert!(denied.body.contains("HttpRequestDenied"), "{}", denied.body);
    server.wait_for_log("add \"http://hidden.spin.internal\" to `allowed_outbound_hosts`");
    let denied_self = server.get("/front/outbound?url=http://self/info").await;
    assert!(
        denied_self.body.contains("HttpRequestDenied"),
        "{}",
        denied_self.body
    );
    // A component calling itself: each hop a fresh instance, refused past the limit.
    let mut url = "http://front.spin.internal/front/info".to_string();
    for _ in 0..12 {
        url = format!("http://front.spin.internal/front/outbound?url={url}");
    }
    let reply = server.get(&format!("/front/outbound?url={url}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("HttpRequestDenied"), "{}", reply.body);
    server.wait_for_log("requests may pass through at most 8 components");
    // Hops 1 to 8 ran; the eighth was refused its call, so the seventh saw a 502.
    assert_eq!(
        reply.body.matches("status: 200").count(),
        7,
        "{}",
        reply.body
    );
    assert_eq!(
        reply.body.matches("status: 502").count(),
        1,
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn llm_calls_report_the_model_as_not_supported() {
    let app = routes_app();
    let server = Server::start(&app);
    let reply = server.get("/api/llm?model=llama2-chat").await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(reply.body.contains("ModelNotSupported"), "{}", reply.body);
}

#[tokio::test]
async fn a_core_module_source_is_made_a_component() {
    let module = common::core_module_guest("probe");
    let app = TestApp::spin(&format!(
        "{V2_HEADER}[[trigger.http]]\nroute = \"/...\"\ncomponent = \"p1\"\n\
         [component.p1]\nsource = \"{}\"\nenvironment = {{ BUILT_FOR = \"wasip1\" }}\n",
        module.display()
    ));
    let server = Server::start(&app);
    let env = server.get("/env").await;
    assert_eq!(env.status, 200, "{}", env.body);
    assert!(env.body.contains("BUILT_FOR=wasip1"), "{}", env.body);
    let info = server.get("/a/info").await.body;
    assert!(info.contains("spin-path-info: /a/info"), "{info}");
    // Compiled once: a second start loads the converted component from the cache.
    drop(server);
    let again = Server::start(&app);
    again.wait_for_log("component `p1` loaded from cache");
}

#[test]
fn components_from_wasi_release_candidates_are_refused_with_the_sdk_to_use() {
    let component = wat::parse_str(
        r#"(component
            (import "wasi:http/types@0.2.0-rc-2023-10-18" (instance (export "f" (func))))
        )"#,
    )
    .unwrap();
    let app = TestApp::spin(&format!(
        "{V2_HEADER}[[trigger.http]]\nroute = \"/...\"\ncomponent = \"old\"\n\
         [component.old]\nsource = \"old.wasm\"\n"
    ));
    std::fs::write(app.path().join("old.wasm"), component).unwrap();
    let stderr = up_fails(&app, &[]);
    assert!(
        stderr.contains("wasi:http/types@0.2.0-rc-2023-10-18") && stderr.contains("spin-sdk 3"),
        "{stderr}"
    );
}

#[tokio::test]
async fn kite_apps_choose_the_spin_headers_and_spin_apps_the_request_id() {
    let kite_app = |settings: &str| {
        TestApp::probe(&format!(
            "{settings}[[route]]\npath = \"/users/:id/info\"\ncomponent = \"p\"\n[component.p]\nsource = \"PROBE\"\n"
        ))
    };
    let plain = Server::start(&kite_app(""));
    let reply = plain.get("/users/7/info").await;
    assert!(spin_headers(&reply.body).is_empty(), "{}", reply.body);
    assert!(reply.header("x-kite-request-id").is_some());
    let with_headers = Server::start(&kite_app(
        "[app.http]\nspin_headers = true\nrequest_id_header = false\n",
    ));
    let reply = with_headers.get("/users/7/info").await;
    assert!(
        spin_headers(&reply.body).contains(&"spin-path-match-id: 7".to_string()),
        "{}",
        reply.body
    );
    assert!(reply.header("x-kite-request-id").is_none());
    let spin = Server::start(&TestApp::spin(&format!(
        "{V2_HEADER}[application.tool.kite.http]\nrequest_id_header = true\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"p\"\n[component.p]\nsource = \"PROBE\"\n"
    )));
    assert!(spin
        .get("/info")
        .await
        .header("x-kite-request-id")
        .is_some());
}

/// Serves `body` at every path over HTTP on a loopback port, for the test's lifetime.
async fn file_server(body: Vec<u8>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = std::sync::Arc::new(body);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_sources_are_downloaded_checked_and_kept() {
    use sha2::Digest;
    let wasm = std::fs::read(common::guest("probe")).unwrap();
    let digest: String = sha2::Sha256::digest(&wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let port = file_server(wasm).await;
    let manifest = |digest: &str, port: u16| {
        format!(
            "{V2_HEADER}[[trigger.http]]\nroute = \"/...\"\ncomponent = \"remote\"\n\
             [component.remote]\nsource = {{ url = \"http://127.0.0.1:{port}/probe.wasm\", digest = \"sha256:{digest}\" }}\n"
        )
    };
    let app = TestApp::spin(&manifest(&digest, port));
    let cache = app.path().join("cache");
    let args = ["--cache-dir", cache.to_str().unwrap()];
    let server = Server::start_with(&app, &args);
    assert_eq!(server.get("/env").await.status, 200);
    drop(server);
    let kept = cache
        .join("downloads")
        .join(format!("sha256-{digest}.wasm"));
    assert!(kept.is_file());
    // Kept: a second start needs no server.
    let offline = TestApp::spin(&manifest(&digest, common::free_port()));
    let server = Server::start_with(&offline, &args);
    assert_eq!(server.get("/env").await.status, 200);
    drop(server);
    // A wrong digest, and a URL nothing answers, are errors naming the URL.
    let wrong = TestApp::spin(&manifest(&"0".repeat(64), port));
    let stderr = up_fails(&wrong, &[]);
    assert!(
        stderr.contains(&format!(
            "http://127.0.0.1:{port}/probe.wasm has SHA-256 {digest}"
        )),
        "{stderr}"
    );
    let unreachable_port = common::free_port();
    let nowhere = TestApp::spin(&manifest(&"1".repeat(64), unreachable_port));
    let stderr = up_fails(&nowhere, &[]);
    assert!(
        stderr.contains(&format!(
            "cannot download http://127.0.0.1:{unreachable_port}/probe.wasm"
        )),
        "{stderr}"
    );
}
