//! `kite serve`: a real host on loopback driven through its admin API and the CLI: deploy,
//! list, show, redeploy, roll back and remove; bundles the loader or the unpacker refuses;
//! tokens; Host routing; data isolation; variables; quotas; restarts; zero-downtime deploys.

mod common;
use bytes::Bytes;
use common::{guest, kite, send_request, Reply, Server};
use http_body_util::Full;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running `kite serve` with its own state directory.
struct Host {
    server: Server,
    admin: SocketAddr,
    token: String,
    state: PathBuf,
    _dirs: Option<tempfile::TempDir>,
}

impl Host {
    fn start(extra: &[&str]) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut host = Self::start_in(&state, extra);
        host._dirs = Some(dir);
        host
    }

    /// Starts a host on `state` (which may already hold apps).
    fn start_in(state: &Path, extra: &[&str]) -> Host {
        let cache = state.parent().unwrap().join("cache");
        let mut command = kite();
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .arg("--state-dir")
            .arg(state)
            .arg("--cache-dir")
            .arg(&cache)
            .args(extra);
        let server = Server::spawn(command);
        let stdout = server.stdout();
        let admin = stdout
            .lines()
            .find_map(|l| l.strip_prefix("admin API on http://"))
            .expect("the admin address")
            .parse()
            .unwrap();
        let token = std::fs::read_to_string(state.join("admin-token")).unwrap();
        Host {
            server,
            admin,
            token,
            state: state.to_path_buf(),
            _dirs: None,
        }
    }

    /// A `kite` command talking to this host.
    fn cli(&self) -> Command {
        let mut command = kite();
        command
            .env("KITE_SERVER", format!("http://{}", self.admin))
            .env("KITE_TOKEN", &self.token)
            .env(
                "KITE_CONFIG_DIR",
                self.state.parent().unwrap().join("config"),
            );
        command
    }

    /// Runs `kite args...` against this host; returns (success, stdout, stderr).
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let output = self.cli().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr,
        )
    }

    /// `kite deploy -f dir args...`, expected to succeed; returns its output.
    fn deploy(&self, dir: &Path, args: &[&str]) -> String {
        let (ok, out, err) = self.run(&[&["deploy", "-f", dir.to_str().unwrap()], args].concat());
        assert!(
            ok,
            "deploy failed: {out}\n{err}\nserver log:\n{}",
            self.server.log()
        );
        out
    }

    /// A request to the admin API with `token` (`None`: no Authorization header).
    async fn admin_call(
        &self,
        method: &str,
        path: &str,
        body: Bytes,
        token: Option<&str>,
    ) -> Reply {
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.admin.to_string());
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        send_request(self.admin, request.body(Full::new(body)).unwrap()).await
    }

    async fn admin(&self, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
        let reply = self
            .admin_call(
                method,
                path,
                Bytes::from(body.to_string()),
                Some(&self.token),
            )
            .await;
        let value = serde_json::from_str(&reply.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", reply.body));
        (reply.status, value)
    }

    /// GET `path` on the apps' listener with `Host: host`.
    async fn get(&self, host: &str, path: &str) -> Reply {
        let request = http::Request::get(path)
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        send_request(self.server.addr, request).await
    }
}

/// An app directory: a kite.toml serving the probe guest at `/...` (copied into the
/// directory, as a user's built component would be), with `extra` manifest text.
fn probe_app(name: &str, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guest("probe"), dir.path().join("probe.wasm")).unwrap();
    std::fs::write(
        dir.path().join("kite.toml"),
        format!(
            "manifest_version = 1\n[app]\nname = \"{name}\"\n\
             [[route]]\npath = \"/...\"\ncomponent = \"probe\"\n\
             [component.probe]\nsource = \"probe.wasm\"\n{extra}"
        ),
    )
    .unwrap();
    dir
}

/// As [`probe_app`], with Wasm of its own: the probe with a custom section naming the app,
/// so that it shares no compilation (and no instance slots) with other apps.
fn distinct_probe_app(name: &str, extra: &str) -> tempfile::TempDir {
    let dir = probe_app(name, extra);
    let mut wasm = std::fs::read(dir.path().join("probe.wasm")).unwrap();
    let section_name = format!("kite-test-{name}");
    wasm.push(0); // a custom section
    wasm.push((1 + section_name.len()) as u8);
    wasm.push(section_name.len() as u8);
    wasm.extend_from_slice(section_name.as_bytes());
    std::fs::write(dir.path().join("probe.wasm"), wasm).unwrap();
    dir
}

/// The same app, saying which version it is in its environment.
fn versioned_app(name: &str, version: u32) -> tempfile::TempDir {
    probe_app(
        name,
        &format!("environment = {{ VERSION = \"{version}\" }}\n"),
    )
}

fn set_version(dir: &Path, version: u32) {
    let manifest = dir.join("kite.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let start = text.find("VERSION = \"").unwrap() + "VERSION = \"".len();
    let end = start + text[start..].find('"').unwrap();
    std::fs::write(
        &manifest,
        format!("{}{version}{}", &text[..start], &text[end..]),
    )
    .unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `VERSION=` lines of a probe's `/env` answer.
fn versions_in(body: &str) -> Vec<&str> {
    body.lines()
        .filter_map(|l| l.strip_prefix("VERSION="))
        .collect()
}

#[tokio::test]
async fn apps_are_deployed_listed_shown_redeployed_rolled_back_and_removed() {
    let host = Host::start(&[]);
    let app = versioned_app("shop", 1);
    let out = host.deploy(app.path(), &[]);
    assert!(out.contains("Deployed `shop` version 1"), "{out}");
    assert!(out.contains("http://shop.kite.localhost:"), "{out}");
    let reply = host.get("shop.kite.localhost", "/env").await;
    assert_eq!((reply.status, versions_in(&reply.body)), (200, vec!["1"]));

    set_version(app.path(), 2);
    let out = host.deploy(app.path(), &[]);
    assert!(out.contains("version 2"), "{out}");
    let reply = host.get("shop.kite.localhost:8080", "/env").await;
    assert_eq!(versions_in(&reply.body), vec!["2"]);

    let (ok, out, _) = host.run(&["apps", "list"]);
    assert!(ok && out.contains("shop  version 2  serving"), "{out}");
    let (status, shown) = host.admin("GET", "/v1/apps/shop", "").await;
    assert_eq!(status, 200);
    assert_eq!(shown["current_version"], 2);
    assert_eq!(shown["versions"].as_array().unwrap().len(), 2);
    assert_eq!(shown["routes"][0]["route"], "/...");
    assert_eq!(shown["hosts"][0], "shop.kite.localhost");
    assert_eq!(shown["status"], "serving");

    let (ok, out, err) = host.run(&["apps", "rollback", "shop"]);
    assert!(ok && out.contains("version 1"), "{out}{err}");
    let reply = host.get("shop.kite.localhost", "/env").await;
    assert_eq!(versions_in(&reply.body), vec!["1"]);

    // Redeploying loads the current version again, with the same answer.
    let (status, shown) = host.admin("POST", "/v1/apps/shop/redeploy", "").await;
    assert_eq!((status, shown["current_version"].as_u64()), (200, Some(1)));
    assert_eq!(
        versions_in(&host.get("shop.kite.localhost", "/env").await.body),
        vec!["1"]
    );

    let (ok, _, err) = host.run(&["apps", "rm", "shop"]);
    assert!(ok, "{err}");
    let reply = host.get("shop.kite.localhost", "/env").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body, "no app is deployed at this host name\n");
    let (_, list) = host.admin("GET", "/v1/apps", "").await;
    assert_eq!(list, serde_json::json!([]));
    assert!(!host.state.join("apps/shop").exists());
    // No bundle file is kept for an app that is gone.
    let blobs: Vec<_> = std::fs::read_dir(host.state.join("blobs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "tmp")
        .collect();
    assert!(blobs.is_empty(), "{blobs:?}");
}

#[tokio::test]
async fn a_bundle_the_loader_refuses_gets_its_error_and_changes_nothing() {
    let host = Host::start(&[]);
    let app = versioned_app("shop", 1);
    host.deploy(app.path(), &[]);
    // A mistake in the manifest: the loader's file:line:key error reaches the client.
    let manifest = app.path().join("kite.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            "[component.probe]",
            "[component.probe]\nlimits = { memory = \"lots\" }",
        ),
    )
    .unwrap();
    // `kite deploy` runs the same loader before uploading.
    let (ok, _, err) = host.run(&["deploy", "-f", app.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("kite.toml:8:"), "{err}");
    assert!(err.contains("component.probe.limits.memory"), "{err}");
    // Uploaded anyway, the server's loader refuses it with the same error.
    let bad = std::fs::read_to_string(&manifest).unwrap();
    let wasm = std::fs::read(app.path().join("probe.wasm")).unwrap();
    let digest = sha256_hex(&wasm);
    let index = format!(
        r#"{{"bundle_format":1,"manifest":"kite.toml","components":{{"probe":"{digest}"}}}}"#
    );
    let regular = tar::EntryType::Regular;
    let component = format!("components/{digest}.wasm");
    let bundle = raw_bundle(&[
        ("kite-bundle.json", regular, index.as_bytes()),
        ("app/kite.toml", regular, bad.as_bytes()),
        (&component, regular, &wasm),
    ]);
    let reply = host
        .admin_call(
            "POST",
            "/v1/apps/shop/versions",
            Bytes::from(bundle),
            Some(&host.token),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("kite.toml:8:"), "{}", reply.body);
    assert!(
        reply.body.contains("component.probe.limits.memory"),
        "{}",
        reply.body
    );
    assert!(
        !reply.body.contains(host.state.to_str().unwrap()),
        "server paths leak: {}",
        reply.body
    );
    // The first version still serves, and no version was added.
    let reply = host.get("shop.kite.localhost", "/env").await;
    assert_eq!(versions_in(&reply.body), vec!["1"]);
    let (_, shown) = host.admin("GET", "/v1/apps/shop", "").await;
    assert_eq!(shown["versions"].as_array().unwrap().len(), 1);
    assert!(!host.state.join("apps/shop/versions/2").exists());

    // A component that is not valid Wasm.
    let broken = probe_app("broken", "");
    std::fs::write(broken.path().join("probe.wasm"), b"not wasm at all").unwrap();
    let (ok, _, err) = host.run(&["deploy", "-f", broken.path().to_str().unwrap()]);
    assert!(!ok && err.contains("component `probe`"), "{err}");
    // Nothing the refused bundle brought is kept.
    assert!(!host
        .state
        .join("blobs")
        .join(sha256_hex(b"not wasm at all"))
        .exists());
    assert_eq!(host.get("broken.kite.localhost", "/").await.status, 404);
    // A writable directory cannot be granted on a shared host.
    let writes = probe_app(
        "writes",
        "files = [{ source = \"data\", destination = \"/data\", writable = true }]\n",
    );
    std::fs::create_dir(writes.path().join("data")).unwrap();
    let (ok, _, err) = host.run(&["deploy", "-f", writes.path().to_str().unwrap()]);
    assert!(!ok && err.contains("granted writable"), "{err}");
}

/// A gzip'd tar with entries written as given: raw names (even ones tar writers refuse),
/// and the entry type.
fn raw_bundle(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, kind, data) in entries {
        let mut header = tar::Header::new_old();
        let field = &mut header.as_old_mut().name;
        field[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(*kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        if *kind == tar::EntryType::Symlink {
            header.set_link_name("/etc").unwrap();
        }
        header.set_cksum();
        tar.append(&header, *data).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

#[tokio::test]
async fn bundles_that_reach_outside_their_directory_or_are_too_large_are_refused() {
    let host = Host::start(&["--app-bundle-size", "1MiB"]);
    let index = br#"{"bundle_format":1,"manifest":"kite.toml","components":{}}"#;
    let manifest = b"manifest_version = 1\n[app]\nname = \"x\"\n";
    let regular = tar::EntryType::Regular;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a path with ..",
            raw_bundle(&[
                ("kite-bundle.json", regular, index),
                ("app/../../../escaped", regular, b"x"),
            ]),
            "may not contain `..`",
        ),
        (
            "an absolute path",
            raw_bundle(&[
                ("kite-bundle.json", regular, index),
                ("/tmp/escaped", regular, b"x"),
            ]),
            "must be relative",
        ),
        (
            "a symbolic link",
            raw_bundle(&[
                ("kite-bundle.json", regular, index),
                ("app/etc", tar::EntryType::Symlink, b""),
            ]),
            "only files and directories",
        ),
        (
            "a file outside app/ and components/",
            raw_bundle(&[
                ("kite-bundle.json", regular, index),
                ("elsewhere", regular, b"x"),
            ]),
            "belong below",
        ),
        (
            "no index",
            raw_bundle(&[("app/kite.toml", regular, manifest)]),
            "has no kite-bundle.json",
        ),
        ("not a tar at all", b"hello".to_vec(), "gzip"),
        (
            "more files than the quota allows, once unpacked",
            raw_bundle(&[
                ("kite-bundle.json", regular, index),
                ("app/big", regular, &vec![0u8; 2 << 20]),
            ]),
            "bundle quota",
        ),
    ];
    for (what, bundle, expected) in cases {
        let reply = host
            .admin_call(
                "POST",
                "/v1/apps/evil/versions",
                Bytes::from(bundle),
                Some(&host.token),
            )
            .await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.body);
        assert!(reply.body.contains(expected), "{what}: {}", reply.body);
    }
    assert!(!host.state.parent().unwrap().join("escaped").exists());
    assert!(!Path::new("/tmp/escaped").exists());
    let (_, list) = host.admin("GET", "/v1/apps", "").await;
    assert_eq!(list, serde_json::json!([]));

    // An upload declaring more bytes than the quota is refused before it is read.
    let stream = tokio::net::TcpStream::connect(host.admin).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let (_tx, body) = futures::channel::mpsc::channel::<
        Result<hyper::body::Frame<Bytes>, std::convert::Infallible>,
    >(1);
    let request = http::Request::post("/v1/apps/evil/versions")
        .header("host", host.admin.to_string())
        .header("authorization", format!("Bearer {}", host.token))
        .header("content-length", (100u64 << 30).to_string())
        .body(http_body_util::StreamBody::new(body))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(60), sender.send_request(request))
        .await
        .expect("answered without reading the body")
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn every_admin_request_needs_the_token() {
    let host = Host::start(&[]);
    let bundle_dir = versioned_app("shop", 1);
    let calls = [
        ("GET", "/v1/apps"),
        ("GET", "/v1/apps/shop"),
        ("POST", "/v1/apps/shop/versions"),
        ("POST", "/v1/apps/shop/rollback"),
        ("DELETE", "/v1/apps/shop"),
        ("PATCH", "/v1/apps/shop/variables"),
        ("PATCH", "/v1/apps/shop/quotas"),
        ("GET", "/v1/apps/shop/stats"),
        ("GET", "/no/such/api"),
    ];
    let wrong = format!("{}x", host.token);
    for (method, path) in calls {
        for token in [None, Some(wrong.as_str()), Some("")] {
            let reply = host
                .admin_call(method, path, Bytes::from_static(b"{}"), token)
                .await;
            assert_eq!(reply.status, 401, "{method} {path} with {token:?}");
            assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        }
    }
    // The CLI with a wrong token says so, and deploys nothing.
    let output = host
        .cli()
        .env("KITE_TOKEN", &wrong)
        .args(["deploy", "-f", bundle_dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("401"));
    assert_eq!(host.get("shop.kite.localhost", "/").await.status, 404);
    // The token is kept owner-only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(host.state.join("admin-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0);
    // `kite login` saves the address and token; later commands need no flags.
    let config = host.state.parent().unwrap().join("config");
    let output = kite()
        .env("KITE_CONFIG_DIR", &config)
        .args([
            "login",
            "--server",
            &format!("http://{}", host.admin),
            "--token",
            &host.token,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = kite()
        .env("KITE_CONFIG_DIR", &config)
        .args(["deploy", "-f", bundle_dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(host.get("shop.kite.localhost", "/").await.status, 200);
}

#[tokio::test]
async fn requests_are_routed_by_host_and_a_host_belongs_to_one_app() {
    let host = Host::start(&["--domain", "apps.test"]);
    let one = versioned_app("one", 1);
    let two = versioned_app("two", 2);
    host.deploy(one.path(), &["--host", "www.example.com"]);
    host.deploy(two.path(), &[]);
    for (host_header, expected) in [
        ("one.apps.test", "1"),
        ("ONE.apps.test.", "1"),
        ("www.example.com:443", "1"),
        ("two.apps.test", "2"),
    ] {
        let reply = host.get(host_header, "/env").await;
        assert_eq!(versions_in(&reply.body), vec![expected], "{host_header}");
    }
    for unknown in ["three.apps.test", "apps.test", "example.com", "127.0.0.1"] {
        let reply = host.get(unknown, "/").await;
        assert_eq!(reply.status, 404, "{unknown}");
        assert_eq!(reply.body, "no app is deployed at this host name\n");
    }
    // Another app cannot take a host that is taken.
    let (ok, _, err) = host.run(&[
        "deploy",
        "-f",
        two.path().to_str().unwrap(),
        "--host",
        "www.example.com",
    ]);
    assert!(
        !ok && err.contains("409") && err.contains("belongs to app `one`"),
        "{err}"
    );
    assert_eq!(
        versions_in(&host.get("www.example.com", "/env").await.body),
        vec!["1"]
    );
    // Names that cannot be host labels are refused.
    let (ok, _, err) = host.run(&[
        "deploy",
        "-f",
        two.path().to_str().unwrap(),
        "--name",
        "Bad_Name",
    ]);
    assert!(!ok && err.contains("invalid app name"), "{err}");
}

#[tokio::test]
async fn apps_with_the_same_store_labels_never_share_data() {
    let host = Host::start(&[]);
    let grants = "key_value_stores = [\"default\", \"cache\"]\nsqlite_databases = [\"default\"]\n";
    let one = probe_app("one", grants);
    let two = probe_app("two", grants);
    host.deploy(one.path(), &[]);
    host.deploy(two.path(), &[]);
    for label in ["default", "cache"] {
        let set = host
            .get(
                "one.kite.localhost",
                &format!("/kv?label={label}&op=set&key=k&value=from-one"),
            )
            .await;
        assert_eq!(set.status, 200, "{}", set.body);
        let mine = host
            .get(
                "one.kite.localhost",
                &format!("/kv?label={label}&op=get&key=k"),
            )
            .await;
        assert!(mine.body.contains("from-one"), "{}", mine.body);
        let theirs = host
            .get(
                "two.kite.localhost",
                &format!("/kv?label={label}&op=get&key=k"),
            )
            .await;
        assert!(
            !theirs.body.contains("from-one"),
            "{label}: {}",
            theirs.body
        );
    }
    let create = http::Request::post("/sql-steps?db=default")
        .header("host", "one.kite.localhost")
        .body(Full::new(Bytes::from(
            "CREATE TABLE secrets(x)\nINSERT INTO secrets VALUES ('one')",
        )))
        .unwrap();
    let reply = send_request(host.server.addr, create).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let read = http::Request::post("/sql?db=default")
        .header("host", "two.kite.localhost")
        .body(Full::new(Bytes::from("SELECT * FROM secrets")))
        .unwrap();
    let reply = send_request(host.server.addr, read).await;
    assert!(reply.body.contains("no such table"), "{}", reply.body);
    // Data outlives a redeploy of the same app.
    host.deploy(one.path(), &[]);
    let mine = host
        .get("one.kite.localhost", "/kv?label=default&op=get&key=k")
        .await;
    assert!(mine.body.contains("from-one"), "{}", mine.body);
}

#[tokio::test]
async fn variables_and_secrets_are_set_through_the_api_and_never_shown() {
    let host = Host::start(&[]);
    let app = probe_app(
        "shop",
        "variables = { greeting = \"{{ greeting }}\", api_key = \"{{ api_key }}\" }\n",
    );
    let manifest = app.path().join("kite.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            "[[route]]",
            "[variables]\ngreeting = { default = \"hello\" }\napi_key = { required = true, secret = true }\n[[route]]",
        ),
    )
    .unwrap();
    let (ok, _, err) = host.run(&["deploy", "-f", app.path().to_str().unwrap()]);
    assert!(
        !ok && err.contains("variable `api_key` is required"),
        "{err}"
    );
    assert!(
        err.contains("kite apps vars set shop api_key=VALUE"),
        "{err}"
    );

    let (ok, out, err) = host.run(&["apps", "vars", "shop", "api_key=sk-12345"]);
    assert!(ok, "{err}");
    assert!(!out.contains("sk-12345"), "{out}");
    host.deploy(app.path(), &[]);
    let reply = host
        .get("shop.kite.localhost", "/spin-variable?name=api_key")
        .await;
    assert_eq!(reply.body, "sk-12345");
    let reply = host
        .get("shop.kite.localhost", "/spin-variable?name=greeting")
        .await;
    assert_eq!(reply.body, "hello");
    // Changing a value takes effect at once, without a new version.
    let (status, shown) = host
        .admin("PATCH", "/v1/apps/shop/variables", r#"{"greeting": "hej"}"#)
        .await;
    assert_eq!(status, 200);
    assert_eq!(shown["current_version"], 1);
    assert_eq!(
        host.get("shop.kite.localhost", "/spin-variable?name=greeting")
            .await
            .body,
        "hej"
    );
    // Values never come back from the API, nor sit in a file others can read.
    for path in ["/v1/apps/shop", "/v1/apps"] {
        let (_, shown) = host.admin("GET", path, "").await;
        let text = shown.to_string();
        assert!(
            !text.contains("sk-12345") && !text.contains("hej"),
            "{text}"
        );
        assert!(text.contains("api_key"), "{text}");
    }
    use std::os::unix::fs::PermissionsExt;
    let file = host.state.join("apps/shop/variables.json");
    assert_eq!(
        std::fs::metadata(file).unwrap().permissions().mode() & 0o077,
        0
    );
    // Unsetting a required value would break the app: refused, and the app keeps serving.
    let (status, body) = host
        .admin("PATCH", "/v1/apps/shop/variables", r#"{"api_key": null}"#)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        host.get("shop.kite.localhost", "/spin-variable?name=api_key")
            .await
            .body,
        "sk-12345"
    );
}

#[tokio::test]
async fn a_restarted_host_serves_every_app_deployed_before() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut host = Host::start_in(&state, &[]);
    let token = host.token.clone();
    let one = versioned_app("one", 1);
    let two = versioned_app("two", 2);
    host.deploy(one.path(), &[]);
    host.deploy(two.path(), &["--host", "two.example"]);
    set_version(one.path(), 3);
    host.deploy(one.path(), &[]);
    host.run(&["apps", "rollback", "one"]);
    host.server.signal("TERM");
    assert_eq!(host.server.wait_exit(Duration::from_secs(60)), Some(0));

    let host = Host::start_in(&state, &[]);
    assert_eq!(host.token, token);
    assert!(
        !host.server.stdout().contains("admin token"),
        "printed once only"
    );
    host.server
        .expect_log_line("counting the apps restored", |l| {
            l.contains("2 app(s) restored")
        });
    assert_eq!(
        versions_in(&host.get("one.kite.localhost", "/env").await.body),
        vec!["1"]
    );
    assert_eq!(
        versions_in(&host.get("two.example", "/env").await.body),
        vec!["2"]
    );
    let (_, shown) = host.admin("GET", "/v1/apps/one", "").await;
    assert_eq!(shown["current_version"], 1);
    assert_eq!(shown["versions"].as_array().unwrap().len(), 2);
}

/// GET `path` with `Host: host` on a fresh connection: the status and body, or why the
/// request failed.
async fn try_get(addr: SocketAddr, host: &str, path: &str) -> Result<(u16, String), String> {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok((
        status,
        String::from_utf8_lossy(&body.to_bytes()).into_owned(),
    ))
}

#[tokio::test]
async fn quotas_refuse_requests_over_an_apps_rate_and_concurrency_and_cap_its_memory() {
    let host = Host::start(&[]);
    let limited = probe_app("limited", "");
    let other = probe_app("other", "");
    host.deploy(limited.path(), &[]);
    host.deploy(other.path(), &[]);
    let (ok, out, err) = host.run(&[
        "apps",
        "quotas",
        "limited",
        "--requests-per-second",
        "1",
        "--burst",
        "3",
    ]);
    assert!(
        ok && out.contains("\"requests_per_second\":1"),
        "{out}{err}"
    );
    // The burst passes, then the rate refuses: at most 3 requests plus one a second.
    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(host.get("limited.kite.localhost", "/").await.status);
    }
    let seconds = started.elapsed().as_secs();
    let served = statuses.iter().filter(|s| **s == 200).count() as u64;
    assert!(
        served >= 3 && served <= 4 + seconds,
        "{statuses:?} in {seconds}s"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    let refused = loop {
        let reply = host.get("limited.kite.localhost", "/").await;
        if reply.status == 429 {
            break reply;
        }
    };
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        refused
            .body
            .contains("app `limited` is over its quota of 1 requests per second"),
        "{}",
        refused.body
    );
    host.server.expect_log_line("for the refusal", |l| {
        l.contains("over its quota") && l.contains("app=limited")
    });
    // Other apps are untouched.
    for _ in 0..10 {
        assert_eq!(host.get("other.kite.localhost", "/").await.status, 200);
    }
    let (_, stats) = host.admin("GET", "/v1/apps/limited/stats", "").await;
    assert!(stats["refused_over_rate"].as_u64().unwrap() >= 2, "{stats}");

    // One request at a time: while one sleeps, the next is refused with 503.
    let (status, _) = host
        .admin(
            "PATCH",
            "/v1/apps/limited/quotas",
            r#"{"requests_per_second": 100000, "max_concurrency": 1}"#,
        )
        .await;
    assert_eq!(status, 200);
    let addr = host.server.addr;
    let sleep = move || {
        tokio::spawn(
            async move { try_get(addr, "limited.kite.localhost", "/sleep?ms=20000").await },
        )
    };
    let mut sleeper = sleep();
    let deadline = Instant::now() + Duration::from_secs(15);
    let refused = loop {
        let reply = host.get("limited.kite.localhost", "/").await;
        // The sleeper may itself have found the place taken by a request of this loop.
        if sleeper.is_finished() {
            sleeper = sleep();
        } else if reply.status == 503 || Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("at its quota of 1 concurrent requests"),
        "{}",
        refused.body
    );
    assert_eq!(host.get("other.kite.localhost", "/").await.status, 200);
    sleeper.abort();

    // Memory: a component's limit is lowered to the app's quota.
    let (status, _) = host
        .admin("PATCH", "/v1/apps/other/quotas", r#"{"memory": 8388608}"#)
        .await;
    assert_eq!(status, 200);
    let reply = host.get("other.kite.localhost", "/alloc?mb=32").await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    let (_, shown) = host.admin("GET", "/v1/apps/other", "").await;
    assert_eq!(shown["effective_quotas"]["memory"], 8388608);
    // A quota above the host's limit is capped at it.
    host.admin(
        "PATCH",
        "/v1/apps/other/quotas",
        r#"{"memory": 1099511627776}"#,
    )
    .await;
    let (_, shown) = host.admin("GET", "/v1/apps/other", "").await;
    assert_eq!(shown["effective_quotas"]["memory"], 128u64 << 20);
    assert_eq!(
        host.get("other.kite.localhost", "/alloc?mb=32")
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_redeployed_twenty_times_under_load_fails_no_request() {
    let host = Host::start(&[]);
    let app = versioned_app("live", 1);
    host.deploy(app.path(), &[]);
    let addr = host.server.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut seen: Vec<u32> = Vec::new();
            let mut failures: Vec<String> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match try_get(addr, "live.kite.localhost", "/env").await {
                    Ok((200, body)) => match versions_in(&body).as_slice() {
                        [one] => seen.push(one.parse().unwrap()),
                        other => failures.push(format!("versions {other:?} in one response")),
                    },
                    Ok((status, body)) => failures.push(format!("{status}: {body}")),
                    Err(e) => failures.push(e),
                }
            }
            (seen, failures)
        }));
    }
    for version in 2..=21 {
        set_version(app.path(), version);
        let dir = app.path().to_path_buf();
        let out = tokio::task::block_in_place(|| host.deploy(&dir, &[]));
        assert!(out.contains(&format!("version {version} ")), "{out}");
        // From now on every request gets the new version.
        let (status, body) = try_get(addr, "live.kite.localhost", "/env").await.unwrap();
        assert_eq!(
            (status, versions_in(&body)),
            (200, vec![version.to_string().as_str()])
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for client in clients {
        let (seen, failures) = client.await.unwrap();
        assert!(failures.is_empty(), "{failures:?}");
        // Each client sees versions in deploy order, never an older one after a newer one.
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        total += seen.len();
    }
    assert!(total > 20, "the load ran: {total} requests");
    // Only the newest versions are kept on disk.
    let (_, shown) = host.admin("GET", "/v1/apps/live", "").await;
    assert_eq!(shown["versions"].as_array().unwrap().len(), 10);
    assert_eq!(shown["current_version"], 21);
    assert!(!host.state.join("apps/live/versions/1").exists());
}

/// A keep-alive connection to the apps' listener for one host name.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Connection {
    async fn open(addr: SocketAddr, host: &str) -> Connection {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        Connection {
            sender,
            host: host.to_string(),
        }
    }

    async fn get(&mut self, path: &str) -> u16 {
        use http_body_util::BodyExt;
        let request = http::Request::get(path)
            .header("host", &self.host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.sender.ready().await.unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        response.into_body().collect().await.unwrap();
        status
    }
}

/// The 99th percentile of `samples` requests' latencies, one after another.
async fn p99(connection: &mut Connection, samples: usize) -> Duration {
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        assert_eq!(connection.get("/").await, 200);
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies[samples * 99 / 100]
}

/// Fairness: flooding one app far beyond its quota (with requests that each cost real
/// work) leaves another app's p99 latency within 2x of what it is without the flood.
/// Without the quota the flood's work takes both cores and the other app's p99 grows
/// many times over. Measured in rounds (unloaded, then loaded); one round within 2x passes.
/// The two apps have different Wasm, as two tenants' apps do (apps with identical Wasm share
/// its compilation and instance slots; see docs/performance.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_flooded_beyond_its_quota_leaves_another_apps_p99_within_twice_unloaded() {
    let host = Host::start(&[]);
    let flooded = distinct_probe_app("flooded", "");
    let quiet = probe_app("quiet", "");
    host.deploy(flooded.path(), &[]);
    host.deploy(quiet.path(), &[]);
    let (status, _) = host
        .admin(
            "PATCH",
            "/v1/apps/flooded/quotas",
            r#"{"requests_per_second": 2, "burst": 2}"#,
        )
        .await;
    assert_eq!(status, 200);
    let addr = host.server.addr;
    let mut quiet = Connection::open(addr, "quiet.kite.localhost").await;
    p99(&mut quiet, 200).await;
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let unloaded = p99(&mut quiet, 500).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut flood = Vec::new();
        for _ in 0..2 {
            let stop = stop.clone();
            flood.push(tokio::spawn(async move {
                let mut connection = Connection::open(addr, "flooded.kite.localhost").await;
                let mut pace = tokio::time::interval(Duration::from_millis(10));
                let (mut served, mut refused) = (0u64, 0u64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    pace.tick().await;
                    match connection.get("/alloc?mb=8").await {
                        200 => served += 1,
                        429 => refused += 1,
                        other => panic!("flood got {other}"),
                    }
                }
                (served, refused)
            }));
        }
        // The flood is under way before measuring.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let loaded = p99(&mut quiet, 500).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (mut served, mut refused) = (0, 0);
        for task in flood {
            let (s, r) = task.await.unwrap();
            served += s;
            refused += r;
        }
        assert!(
            refused > 10 * served.max(1),
            "a flood far beyond the quota: {served} served, {refused} refused"
        );
        rounds.push((unloaded, loaded));
        if loaded <= unloaded * 2 {
            eprintln!("p99 unloaded {unloaded:?}, flooded {loaded:?}; flood {served} served, {refused} refused");
            return;
        }
    }
    panic!("the quiet app's p99 (unloaded, flooded) in each round: {rounds:?}");
}

/// The value of the series `name` (with its labels, as Prometheus prints them).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_count_an_apps_known_traffic_and_the_hosts_state() {
    let host = Host::start(&["--idle-after", "1s"]);
    let app = probe_app("shop", "limits = { timeout = \"1s\" }\n");
    host.deploy(app.path(), &[]);
    host.deploy(app.path(), &[]);
    // Deployed and not yet requested, the app holds no instance slot.
    let reply = host
        .admin_call("GET", "/metrics", Bytes::new(), Some(&host.token))
        .await;
    assert_eq!(metric(&reply.body, "kite_instance_slots_in_use"), 0.0);
    assert_eq!(metric(&reply.body, "kite_instances_ahead"), 0.0);
    for _ in 0..3 {
        assert_eq!(host.get("shop.kite.localhost", "/").await.status, 200);
    }
    assert_eq!(
        host.get("shop.kite.localhost", "/read?path=/nope")
            .await
            .status,
        404
    );
    assert_eq!(host.get("shop.kite.localhost", "/trap").await.status, 500);
    assert_eq!(host.get("shop.kite.localhost", "/loop").await.status, 504);
    // A concurrency quota of 0 suspends the app: every request is refused.
    host.admin("PATCH", "/v1/apps/shop/quotas", r#"{"max_concurrency": 0}"#)
        .await;
    for _ in 0..2 {
        assert_eq!(host.get("shop.kite.localhost", "/").await.status, 503);
    }
    let scrape = || async {
        let reply = host
            .admin_call("GET", "/metrics", Bytes::new(), Some(&host.token))
            .await;
        assert_eq!(reply.status, 200);
        reply.body
    };
    let text = scrape().await;
    let app_series = |name: &str, extra: &str| format!("{name}{{app=\"shop\"{extra}}}");
    assert_eq!(
        metric(
            &text,
            &app_series("kite_app_responses_total", ",class=\"2xx\"")
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            &app_series("kite_app_responses_total", ",class=\"4xx\"")
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            &app_series("kite_app_responses_total", ",class=\"5xx\"")
        ),
        2.0
    );
    assert_eq!(metric(&text, &app_series("kite_app_traps_total", "")), 1.0);
    assert_eq!(
        metric(&text, &app_series("kite_app_timeouts_total", "")),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            &app_series("kite_app_quota_refusals_total", ",quota=\"concurrency\"")
        ),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            &app_series("kite_app_quota_refusals_total", ",quota=\"rate\"")
        ),
        0.0
    );
    assert_eq!(
        metric(
            &text,
            &app_series("kite_app_response_head_seconds_count", "")
        ),
        6.0
    );
    assert_eq!(
        metric(
            &text,
            "kite_app_response_head_seconds_bucket{le=\"+Inf\",app=\"shop\"}"
        ),
        6.0
    );
    // The timed-out request alone took a second or more.
    assert!(metric(&text, &app_series("kite_app_response_head_seconds_sum", "")) >= 1.0);
    assert_eq!(metric(&text, "kite_apps_deployed"), 1.0);
    // The first deploy compiled the component; the second found it in the cache.
    assert_eq!(metric(&text, "kite_compile_cache_misses_total"), 1.0);
    assert!(metric(&text, "kite_compile_cache_hits_total") >= 1.0);
    // Once every response is sent nothing is in flight, and an idle app gives back the
    // slots of the instances built ahead for it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = scrape().await;
        let in_flight = metric(&text, &app_series("kite_app_in_flight", ""));
        let slots = metric(&text, "kite_instance_slots_in_use");
        if in_flight == 0.0 && slots == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "in flight {in_flight}, slots {slots}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn log_lines_name_their_app_and_a_tail_streams_one_apps_lines_only() {
    let host = Host::start(&[]);
    host.deploy(probe_app("shop", "").path(), &[]);
    host.deploy(probe_app("other", "").path(), &[]);
    // `kite apps logs` follows the app's log; its lines are collected as they come.
    let mut tail = host
        .cli()
        .args(["apps", "logs", "shop"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = lines.clone();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let mut lines = sink.lock().unwrap();
            lines.push_str(&line);
            lines.push('\n');
        }
    });
    let seen = |needle: &str| lines.lock().unwrap().contains(needle);
    // Requests until the tail is attached and reports one.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen("GET /attached") {
        assert!(Instant::now() < deadline, "the tail never showed a request");
        host.get("shop.kite.localhost", "/attached").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    host.get("other.kite.localhost", "/print").await;
    host.get("other.kite.localhost", "/other-path").await;
    host.get("shop.kite.localhost", "/print").await;
    host.get("shop.kite.localhost", "/trap").await;
    host.get("shop.kite.localhost", "/last").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen("GET /last") {
        assert!(
            Instant::now() < deadline,
            "no line for /last:\n{}",
            lines.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = tail.kill();
    let _ = tail.wait();
    let text = lines.lock().unwrap().clone();
    assert!(
        text.contains("GET /print 200") && text.contains("app=shop"),
        "{text}"
    );
    assert!(text.contains("probe says hello on stdout"), "{text}");
    assert!(text.contains("the component trapped"), "{text}");
    assert!(
        !text.contains("other"),
        "another app's lines leaked into the tail:\n{text}"
    );
    // On stderr, access lines and the guest's own lines name the app.
    let access = host.server.expect_log_line("for shop's /print", |l| {
        l.contains("GET /print 200") && l.contains("app=shop")
    });
    assert!(access.contains("component=probe"), "{access}");
    host.server.expect_log_line("for other's /print", |l| {
        l.contains("GET /print 200") && l.contains("app=other")
    });
    host.server.expect_log_line("with the guest's output", |l| {
        l.contains("probe says hello on stderr") && l.contains("app=shop")
    });
    // A tail of an app that does not exist is refused.
    let (ok, _, err) = host.run(&["apps", "logs", "nope"]);
    assert!(!ok && err.contains("404"), "{err}");
}

#[tokio::test]
async fn spin_and_wagi_apps_deploy_with_their_files() {
    let host = Host::start(&[]);
    // A Spin app granting a directory of files.
    let spin = tempfile::tempdir().unwrap();
    std::fs::copy(guest("probe"), spin.path().join("probe.wasm")).unwrap();
    std::fs::create_dir_all(spin.path().join("static/nested")).unwrap();
    std::fs::write(
        spin.path().join("static/nested/hello.txt"),
        "hello from a bundle",
    )
    .unwrap();
    std::fs::write(
        spin.path().join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"Spin App\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n\
         [component.probe]\nsource = \"probe.wasm\"\nfiles = [{ source = \"static\", destination = \"/static\" }]\n",
    )
    .unwrap();
    let out = host.deploy(spin.path(), &[]);
    assert!(out.contains("Deployed `spin-app` version 1"), "{out}");
    let reply = host
        .get(
            "spin-app.kite.localhost",
            "/read?path=/static/nested/hello.txt",
        )
        .await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "hello from a bundle")
    );
    // The granted files are read-only.
    let reply = host
        .get(
            "spin-app.kite.localhost",
            "/write?path=/static/nested/hello.txt",
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let reply = host
        .get(
            "spin-app.kite.localhost",
            "/read?path=/static/nested/hello.txt",
        )
        .await;
    assert_eq!(reply.body, "hello from a bundle");

    // A Wagi app: a WASI preview 1 program from modules.toml.
    let wagi = tempfile::tempdir().unwrap();
    std::fs::copy(
        common::core_module_guest("cgi"),
        wagi.path().join("cgi.wasm"),
    )
    .unwrap();
    std::fs::write(
        wagi.path().join("modules.toml"),
        "[[module]]\nroute = \"/cgi/...\"\nmodule = \"cgi.wasm\"\n",
    )
    .unwrap();
    let out = host.deploy(wagi.path(), &["--name", "cgi"]);
    assert!(out.contains("/cgi/..."), "{out}");
    let reply = host.get("cgi.kite.localhost", "/cgi/some/where").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.contains("PATH_INFO=/some/where"),
        "{}",
        reply.body
    );
    // `kite deploy --output` writes the bundle; the same bytes every time.
    let first = spin.path().join("first.tar.gz");
    let second = spin.path().join("second.tar.gz");
    for file in [&first, &second] {
        let (ok, out, err) = host.run(&[
            "deploy",
            "-f",
            spin.path().to_str().unwrap(),
            "--output",
            file.to_str().unwrap(),
        ]);
        assert!(ok && out.contains("Packed `spin-app`"), "{out}{err}");
    }
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap()
    );
}

#[tokio::test]
async fn an_app_cannot_reach_past_its_own_data_or_into_the_hosts_network() {
    let host = Host::start(&[]);
    // A store label is a file name under the app's data directory: labels that could name
    // another app's file are refused by the loader.
    for label in ["../../victim/data/key_value/default", "/tmp/x", "a.b"] {
        let app = probe_app("escape", &format!("key_value_stores = [{label:?}]\n"));
        let (ok, _, err) = host.run(&["deploy", "-f", app.path().to_str().unwrap()]);
        assert!(!ok && err.contains("invalid store label"), "{label}: {err}");
    }
    // Private networks (loopback included: the admin API is there) are blocked for every
    // app by default, whatever its manifest allows.
    let nosy = probe_app(
        "nosy",
        "allowed_outbound_hosts = [\"http://127.0.0.1:*\"]\n",
    );
    host.deploy(nosy.path(), &[]);
    let url = format!("http://127.0.0.1:{}/v1/apps", host.admin.port());
    let reply = host
        .get("nosy.kite.localhost", &format!("/outbound?url={url}"))
        .await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert!(
        reply.body.contains("DestinationIpProhibited"),
        "{}",
        reply.body
    );
    // The operator may lift it.
    let open = Host::start(&["--block-network", "none"]);
    open.deploy(nosy.path(), &[]);
    let reply = open
        .get("nosy.kite.localhost", &format!("/outbound?url={url}"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("status: 401"), "{}", reply.body);
    // Host names under the domain belong to the apps named so.
    let (ok, _, err) = host.run(&[
        "deploy",
        "-f",
        nosy.path().to_str().unwrap(),
        "--host",
        "other.kite.localhost",
    ]);
    assert!(!ok && err.contains("under the host's domain"), "{err}");
}

#[tokio::test]
async fn a_store_quota_caps_what_an_app_may_write() {
    let host = Host::start(&[]);
    let app = probe_app(
        "small",
        "key_value_stores = [\"default\"]\nsqlite_databases = [\"default\"]\n",
    );
    host.deploy(app.path(), &[]);
    let other = probe_app("other", "key_value_stores = [\"default\"]\n");
    host.deploy(other.path(), &[]);
    let (status, _) = host
        .admin(
            "PATCH",
            "/v1/apps/small/quotas",
            r#"{"store_size": 262144}"#,
        )
        .await;
    assert_eq!(status, 200);
    // 16 KiB values until the store refuses one: well before 1 MiB is written.
    let value = "v".repeat(16 << 10);
    let mut stored = 0;
    let refusal = loop {
        let reply = host
            .get(
                "small.kite.localhost",
                &format!("/kv?label=default&op=set&key=k{stored}&value={value}"),
            )
            .await;
        if reply.status != 200 {
            break reply;
        }
        stored += 1;
        assert!(stored < 64, "1 MiB went into a store capped at 256 KiB");
    };
    assert!(
        refusal.body.to_lowercase().contains("full"),
        "{}",
        refusal.body
    );
    assert!(stored >= 4, "the store took {stored} values");
    // SQLite databases are capped alike.
    let create = http::Request::post("/sql-steps?db=default")
        .header("host", "small.kite.localhost")
        .body(Full::new(Bytes::from(
            "CREATE TABLE t(x)\nWITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) INSERT INTO t SELECT randomblob(100) FROM n",
        )))
        .unwrap();
    let reply = send_request(host.server.addr, create).await;
    assert!(reply.body.to_lowercase().contains("full"), "{}", reply.body);
    // Other apps keep their own quota.
    let reply = host
        .get(
            "other.kite.localhost",
            &format!("/kv?label=default&op=set&key=k&value={value}"),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Unsetting the quota brings back the host's default.
    let (status, shown) = host
        .admin("PATCH", "/v1/apps/small/quotas", r#"{"store_size": null}"#)
        .await;
    assert_eq!(status, 200);
    assert_eq!(shown["effective_quotas"]["store_size"], 256u64 << 20);
    assert!(shown["quotas"].get("store_size").is_none(), "{shown}");
    let (status, body) = host
        .admin("PATCH", "/v1/apps/small/quotas", r#"{"speed": 1}"#)
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn an_apps_own_requests_count_against_its_quotas_and_its_limits_are_the_hosts() {
    let host = Host::start(&["--max-timeout", "1s", "--block-network", "203.0.113.0/24"]);
    let app = probe_app(
        "chain",
        "allowed_outbound_hosts = [\"http://self\", \"http://127.0.0.1:*\"]\nlimits = { timeout = \"1h\" }\n",
    );
    host.deploy(app.path(), &[]);
    // One place: the request holds it, so the request it sends to its own app is refused.
    host.admin(
        "PATCH",
        "/v1/apps/chain/quotas",
        r#"{"max_concurrency": 1}"#,
    )
    .await;
    let reply = host
        .get("chain.kite.localhost", "/outbound?url=http://self/")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("status: 503"), "{}", reply.body);
    host.admin(
        "PATCH",
        "/v1/apps/chain/quotas",
        r#"{"max_concurrency": null}"#,
    )
    .await;
    let reply = host
        .get("chain.kite.localhost", "/outbound?url=http://self/")
        .await;
    assert!(reply.body.contains("status: 200"), "{}", reply.body);
    // The component asks for an hour; the host allows a second.
    let started = Instant::now();
    let reply = host.get("chain.kite.localhost", "/loop").await;
    assert_eq!(reply.status, 504, "{}", reply.body);
    assert!(started.elapsed() < Duration::from_secs(60));
    // Another blocked network does not unblock the private ones.
    let url = format!("http://127.0.0.1:{}/", host.admin.port());
    let reply = host
        .get("chain.kite.localhost", &format!("/outbound?url={url}"))
        .await;
    assert!(
        reply.body.contains("DestinationIpProhibited"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn when_slots_run_out_other_apps_give_back_the_instances_they_built_ahead() {
    // Four slots: a quarter (one) may wait built ahead.
    let host = Host::start(&["--max-instances", "4", "--idle-after", "1h"]);
    host.deploy(distinct_probe_app("early", "").path(), &[]);
    host.deploy(distinct_probe_app("busy", "").path(), &[]);
    let scrape = || async {
        host.admin_call("GET", "/metrics", Bytes::new(), Some(&host.token))
            .await
            .body
    };
    let wait_for = |what: &'static str, series: &'static str, value: f64| {
        let scrape = &scrape;
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while metric(&scrape().await, series) != value {
                assert!(Instant::now() < deadline, "never {what}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // `early` serves once, then keeps the one instance the budget allows built ahead.
    assert_eq!(host.get("early.kite.localhost", "/").await.status, 200);
    wait_for("an instance ahead", "kite_instances_ahead", 1.0).await;
    // `busy` takes the three other slots with requests that sleep...
    let addr = host.server.addr;
    let sleepers: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn(
                async move { try_get(addr, "busy.kite.localhost", "/sleep?ms=30000").await },
            )
        })
        .collect();
    wait_for("three in flight", "kite_app_in_flight{app=\"busy\"}", 3.0).await;
    // ...and its next request finds no free slot until `early` gives its instance back.
    // (Four slots: three sleep, and the fourth was `early`'s instance built ahead.)
    let reply = host.get("busy.kite.localhost", "/").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    for sleeper in sleepers {
        sleeper.abort();
    }
}
