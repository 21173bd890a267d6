//! Test harness: builds the guest components in tests/guests for wasm32-wasip2, starts the
//! real `kite` binary on 127.0.0.1 with an OS-chosen port, and speaks HTTP to it.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

mod certs;
mod services;
#[allow(unused_imports)]
pub use certs::TestCerts;
#[allow(unused_imports)]
pub use services::*;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The target directory shared by the test guests and the examples (same toolchain and
/// dependency versions, so dependencies compile once).
pub fn wasm_target_dir() -> PathBuf {
    repo_root().join("tests/guests/target")
}

/// Builds the cargo project in `dir` for wasm32-wasip2 (release) into [`wasm_target_dir`];
/// returns the directory holding the built `.wasm` files.
pub fn build_wasm(dir: &Path) -> PathBuf {
    build_wasm_for(dir, "wasm32-wasip2")
}

/// Builds the cargo project in `dir` for `target` (release) into [`wasm_target_dir`].
pub fn build_wasm_for(dir: &Path, target: &str) -> PathBuf {
    let target_dir = wasm_target_dir();
    let output = Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", target, "--target-dir"])
        .arg(&target_dir)
        .current_dir(dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("running cargo to build a wasm component");
    assert!(
        output.status.success(),
        "building {} failed (is the {target} target installed? `rustup target add {target}`):\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    target_dir.join(target).join("release")
}

/// Path of a guest built as a WASI preview 1 core module (`wasm32-wasip1`), as older Spin
/// SDKs' build commands produce.
pub fn core_module_guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let built =
        BUILT.get_or_init(|| build_wasm_for(&repo_root().join("tests/guests"), "wasm32-wasip1"));
    let path = built.join(format!("{name}.wasm"));
    assert!(path.is_file(), "no guest {}", path.display());
    path
}

/// Path of a guest component, building tests/guests once per test process.
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let built = BUILT.get_or_init(|| build_wasm(&repo_root().join("tests/guests")));
    let path = built.join(format!("{name}.wasm"));
    assert!(path.is_file(), "no guest {}", path.display());
    path
}

/// An app directory with a kite.toml.
pub struct TestApp {
    pub dir: tempfile::TempDir,
}

impl TestApp {
    pub fn new(manifest: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kite.toml"), manifest).unwrap();
        TestApp { dir }
    }

    /// A manifest whose every component is the probe guest.
    pub fn probe(body: &str) -> Self {
        let probe = guest("probe");
        let manifest = format!(
            "manifest_version = 1\n[app]\nname = \"test\"\n{}",
            body.replace("PROBE", &probe.display().to_string())
        );
        Self::new(&manifest)
    }

    /// A Spin app: `spin.toml` holding `manifest`, with `PROBE` standing for the probe
    /// guest's path and `SPIN_SDK_GUEST` for the guest written with the Spin SDK.
    pub fn spin(manifest: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let manifest = manifest
            .replace(
                "SPIN_SDK_GUEST",
                &guest("spin_sdk_guest").display().to_string(),
            )
            .replace("PROBE", &guest("probe").display().to_string());
        std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
        TestApp { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// `kite up` for `app` with `extra` arguments, expected to fail before listening: exit 1,
/// a one-paragraph `error: ...`, no panic. Returns stderr.
pub fn up_fails(app: &TestApp, extra: &[&str]) -> String {
    let mut command = kite();
    command
        .args(["up", "--listen", "127.0.0.1:0", "--no-cache"])
        .args(extra)
        .arg("-f")
        .arg(app.path());
    expect_failure(command)
}

/// Runs a prepared `kite` command that must fail before listening; returns stderr.
pub fn expect_failure(mut command: Command) -> String {
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains("listening"),
        "must fail before listening: {stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    // Progress lines may come first; the error is the last thing written.
    let error_at = stderr.find("error: ");
    assert!(
        error_at.is_some_and(|at| at == 0 || stderr[..at].ends_with('\n')),
        "{stderr}"
    );
    stderr
}

/// A running `kite up`. Killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

pub fn kite() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kite"));
    command.env_remove("RUST_BACKTRACE").env("RUST_LOG", "info");
    command
}

/// Runs `kite build` for the app in `dir` (its components' own build commands, with
/// cargo's defaults), then serves it with the compile cache in `cache`.
pub fn build_and_serve(dir: &Path, cache: &Path) -> Server {
    let build = kite()
        .args(["build", "-f"])
        .arg(dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );
    Server::start_at(dir, &["--cache-dir", cache.to_str().unwrap()])
}

impl Server {
    pub fn start(app: &TestApp) -> Server {
        let cache = app.path().join(".cache");
        Self::start_with(app, &["--cache-dir", cache.to_str().unwrap()])
    }

    pub fn start_with(app: &TestApp, extra: &[&str]) -> Server {
        Self::start_at(app.path(), extra)
    }

    /// Starts `kite up` for the app at `path` (a directory or manifest).
    pub fn start_at(path: &Path, extra: &[&str]) -> Server {
        let mut command = kite();
        command
            .args(["up", "--listen", "127.0.0.1:0", "-f"])
            .arg(path)
            .args(extra);
        Self::spawn(command)
    }

    /// Starts `kite up` under a shell limit on virtual memory (`ulimit -v`, in KiB).
    pub fn start_with_address_space_limit(app: &TestApp, kib: u64) -> Server {
        let mut command = Command::new("sh");
        command
            .env_remove("RUST_BACKTRACE")
            .env("RUST_LOG", "info")
            .arg("-c")
            .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_kite"))
            .args(["up", "--listen", "127.0.0.1:0", "--no-cache", "-f"])
            .arg(app.path());
        Self::spawn(command)
    }

    /// Spawns a prepared `kite up` command and waits until it listens.
    pub fn spawn(mut command: Command) -> Server {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting kite");
        let log = Arc::new(Mutex::new(String::new()));
        let stdout_text = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let sink = stdout_text.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // Kept before the address is reported: the banner is whole once it is.
                {
                    let mut out = sink.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
                if let Some(addr) = line.strip_prefix("listening on http://") {
                    let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "kite did not start listening; log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Server {
            child,
            addr,
            log,
            stdout: stdout_text,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Polls the log (written asynchronously) for up to 10 s until `done` holds; returns
    /// the log as last read.
    fn poll_log(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if done(&log) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the log contains `needle`; returns the log (the caller asserts on it).
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.poll_log(|log| log.contains(needle))
    }

    /// Waits for a log line that `matches` and returns it; fails the test, showing the
    /// log, if none appears within 10 s.
    pub fn expect_log_line(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let log = self.poll_log(|log| log.lines().any(&matches));
        match log.lines().find(|line| matches(line)) {
            Some(line) => line.to_string(),
            None => panic!("no log line {what}:\n{log}"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> Reply {
        send(self.addr, http::Method::GET, path, Bytes::new()).await
    }

    /// A POST of `body`: the status and the response body.
    pub async fn post(&self, path: &str, body: &str) -> (u16, String) {
        let reply = send(
            self.addr,
            http::Method::POST,
            path,
            Bytes::from(body.to_string()),
        )
        .await;
        (reply.status, reply.body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
    /// Whether the body ended with an error instead of cleanly.
    pub body_failed: bool,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request on a fresh connection that may fail (server gone, connection cut): the status,
/// if the whole response arrived.
pub async fn try_send(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
    body: Bytes,
) -> Option<u16> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(connection);
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .body(Full::new(body))
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    response.into_body().collect().await.ok()?;
    Some(status)
}

/// One request on a fresh connection.
pub async fn send(addr: SocketAddr, method: http::Method, path: &str, body: Bytes) -> Reply {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .body(Full::new(body))
        .unwrap();
    send_request(addr, request).await
}

/// `request` on a fresh connection: the response, its body still to be read frame by frame.
pub async fn response_of<B>(
    addr: SocketAddr,
    request: http::Request<B>,
) -> http::Response<hyper::body::Incoming>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender.send_request(request).await.unwrap()
}

pub async fn send_request<B>(addr: SocketAddr, request: http::Request<B>) -> Reply
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let response = response_of(addr, request).await;
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.map(|b| b.to_bytes());
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body_failed: collected.is_err(),
        body: String::from_utf8_lossy(&collected.unwrap_or_default()).into_owned(),
    }
}

/// Resident set size of a process, in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// A loopback port the OS just handed out and nobody listens on, for servers whose address
/// must be known before they start.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Installs the Python and JavaScript guest toolchains (`scripts/guest-tools.sh`) once per
/// test process; returns the tools directory.
pub fn guest_tools(which: &str) -> PathBuf {
    static INSTALLED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut installed = INSTALLED.lock().unwrap();
    let root = repo_root();
    if !installed.iter().any(|w| w == which) {
        let output = Command::new("bash")
            .arg(root.join("scripts/guest-tools.sh"))
            .arg(which)
            .output()
            .expect("running scripts/guest-tools.sh");
        assert!(
            output.status.success(),
            "installing the {which} guest tools failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        installed.push(which.to_string());
    }
    root.join("tests/guests/.tools")
}

/// A Spin app (spin.toml, in a temporary directory) serving the component at `source` on
/// every path, with the default key-value store and database, a variable `greeting`
/// (`default` unless overridden), and `extra` lines added to its component table.
pub fn spin_app(source: &Path, default: &str, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("spin.toml"),
        format!(
            r#"spin_manifest_version = 2

[application]
name = "spin-app"

[variables]
greeting = {{ default = "{default}" }}

[[trigger.http]]
route = "/..."
component = "app"

[component.app]
source = "{}"
key_value_stores = ["default"]
sqlite_databases = ["default"]
{extra}
[component.app.variables]
greeting = "{{{{ greeting }}}}"
"#,
            source.display()
        ),
    )
    .unwrap();
    dir
}

/// Builds a guest into `output` with `build` (which writes the path it is given) unless
/// `output` is newer than every file in `sources`. Test processes run side by side and the
/// language tools do not build reproducibly: they take turns on a lock file, and a new
/// build replaces the old file in one rename, so a server never sees a half-written or
/// changed component under a path it was given.
fn build_guest_once(output: &Path, sources: &[PathBuf], build: impl FnOnce(&Path)) {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let lock = std::fs::File::create(output.with_extension("lock")).unwrap();
    lock.lock().unwrap();
    let fresh = modified(output).is_some_and(|built| {
        sources
            .iter()
            .all(|source| modified(source).is_some_and(|changed| changed <= built))
    });
    if !fresh {
        let partial = output.with_extension("partial.wasm");
        build(&partial);
        std::fs::rename(&partial, output).unwrap();
    }
}

/// Builds tests/guests/python/<name>/app.py with componentize-py for `world` (a world of
/// the WIT files Spin's Python SDK ships; a `spin:up` world for an app written with that
/// SDK) into the guests' target directory, unless built already; returns its path.
pub fn python_guest(name: &str, world: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap();
    if let Some((_, path)) = built.iter().find(|(n, _)| n == name) {
        return path.clone();
    }
    let tools = guest_tools("python").join("python");
    let source = repo_root().join("tests/guests/python").join(name);
    let out_dir = wasm_target_dir().join("python");
    std::fs::create_dir_all(&out_dir).unwrap();
    let output_path = out_dir.join(format!("{name}.wasm"));
    let componentize_py = tools.join("bin/componentize-py");
    let sources = [source.join("app.py"), componentize_py.clone()];
    build_guest_once(&output_path, &sources, |partial| {
        let mut command = Command::new(&componentize_py);
        command.env("PYTHONPATH", &tools);
        if world.starts_with("spin:up/") {
            // A Spin SDK app imports `spin_sdk`, whose package carries the WIT and the
            // bindings: the tool finds them on the Python path, as Spin's templates build.
            command.args(["-w", world, "componentize", "app", "-p", ".", "-p"]);
            command.arg(&tools);
        } else {
            command.arg("-d").arg(tools.join("spin_sdk/wit"));
            command.args(["-w", world, "componentize", "app"]);
        }
        let output = command
            .arg("-o")
            .arg(partial)
            .current_dir(&source)
            .output()
            .expect("running componentize-py");
        assert!(
            output.status.success(),
            "componentize-py failed for {}:\n{}{}",
            source.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    });
    built.push((name.to_string(), output_path.clone()));
    output_path
}

/// Builds tests/guests/js/<name>/app.js with componentize-js for `world` (of the WIT files
/// Spin's Python SDK ships, copied beside the source: the tool reads paths relative to its
/// working directory only), unless built already; returns the component's path.
pub fn js_guest(name: &str, world: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap();
    if let Some((_, path)) = built.iter().find(|(n, _)| n == name) {
        return path.clone();
    }
    let wit = guest_tools("python").join("python/spin_sdk/wit");
    let tools = guest_tools("js").join("js");
    let out_dir = wasm_target_dir().join("js");
    std::fs::create_dir_all(&out_dir).unwrap();
    let output_path = out_dir.join(format!("{name}.wasm"));
    let source = repo_root()
        .join("tests/guests/js")
        .join(name)
        .join("app.js");
    let componentize_js = tools.join("node_modules/.bin/componentize-js");
    let sources = [source.clone(), componentize_js.clone()];
    build_guest_once(&output_path, &sources, |partial| {
        let work = out_dir.join(name);
        let _ = std::fs::remove_dir_all(&work);
        copy_dir(&wit, &work.join("wit"));
        std::fs::copy(&source, work.join("app.js")).unwrap();
        let output = Command::new(&componentize_js)
            .args(["app.js", "--wit", "wit", "-n", world, "-o"])
            .arg(partial)
            .current_dir(&work)
            .output()
            .expect("running componentize-js");
        assert!(
            output.status.success(),
            "componentize-js failed for {name}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    });
    built.push((name.to_string(), output_path.clone()));
    output_path
}

/// Builds tests/guests/js/<name>/app.js with componentize-qjs (shipped with jco, async
/// ABI) for the `service` world of its `world.wit`, beside the WIT packages Spin's Python
/// SDK ships, unless built already; returns the component's path.
pub fn js_qjs_guest(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap();
    if let Some((_, path)) = built.iter().find(|(n, _)| n == name) {
        return path.clone();
    }
    let deps = guest_tools("python").join("python/spin_sdk/wit/deps");
    let tools = guest_tools("js").join("js");
    let out_dir = wasm_target_dir().join("js");
    std::fs::create_dir_all(&out_dir).unwrap();
    let output_path = out_dir.join(format!("{name}.wasm"));
    let source = repo_root().join("tests/guests/js").join(name);
    let componentize_qjs = tools.join("node_modules/.bin/componentize-qjs");
    let sources = [
        source.join("app.js"),
        source.join("world.wit"),
        componentize_qjs.clone(),
    ];
    build_guest_once(&output_path, &sources, |partial| {
        let work = out_dir.join(name);
        let _ = std::fs::remove_dir_all(&work);
        copy_dir(&deps, &work.join("wit/deps"));
        std::fs::copy(source.join("world.wit"), work.join("wit/world.wit")).unwrap();
        let output = Command::new(&componentize_qjs)
            .args(["--wit", "wit", "--js"])
            .arg(source.join("app.js"))
            .args(["-n", "service", "-o"])
            .arg(partial)
            .current_dir(&work)
            .output()
            .expect("running componentize-qjs");
        assert!(
            output.status.success(),
            "componentize-qjs failed for {name}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    });
    built.push((name.to_string(), output_path.clone()));
    output_path
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
