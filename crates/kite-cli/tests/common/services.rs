//! Real servers the outbound tests talk to, each on a free loopback port and stopped on
//! drop: redis-server, PostgreSQL, MariaDB and mosquitto.

use super::{free_port, TestCerts};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A real redis-server on a free loopback port, without persistence; killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(None)
    }

    /// A server that speaks only TLS, with `certs`' server certificate.
    pub fn start_tls(certs: &TestCerts) -> RedisServer {
        Self::start_with(Some(certs))
    }

    fn start_with(tls: Option<&TestCerts>) -> RedisServer {
        let port = free_port();
        let mut command = Command::new("redis-server");
        match tls {
            None => command.args(["--port", &port.to_string()]),
            Some(certs) => command
                .args(["--port", "0", "--tls-port", &port.to_string()])
                .arg("--tls-cert-file")
                .arg(certs.path("server.pem"))
                .arg("--tls-key-file")
                .arg(certs.path("server.key"))
                .args(["--tls-auth-clients", "no"]),
        };
        let child = command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server (install it with `apt-get install -y redis-server`)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { child, port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PostgreSQL server binary: on `PATH`, or where Debian's package puts it.
fn postgres_binary(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    let packaged = || {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|version| version.path().join("bin").join(name))
            .filter(|candidate| candidate.is_file())
            .collect();
        found.sort();
        found.pop()
    };
    on_path.or_else(packaged).unwrap_or_else(|| {
        panic!("no PostgreSQL `{name}`: install it with `apt-get install -y postgresql`")
    })
}

/// A real PostgreSQL server on a free loopback port, in its own temporary data directory,
/// run as `nobody` when the tests run as root (PostgreSQL refuses root); stopped on drop.
/// Its superuser `postgres` needs no password on loopback.
pub struct PgServer {
    child: Child,
    pub port: u16,
    _data: tempfile::TempDir,
}

impl PgServer {
    pub fn start() -> PgServer {
        Self::start_with(None)
    }

    /// A server that offers TLS with `certs`' server certificate (and still takes plain
    /// connections, as PostgreSQL does unless told otherwise).
    pub fn start_tls(certs: &TestCerts) -> PgServer {
        Self::start_with(Some(certs))
    }

    fn start_with(tls: Option<&TestCerts>) -> PgServer {
        use std::os::unix::process::CommandExt;
        let data = tempfile::tempdir().unwrap();
        let as_server_user = |command: &mut Command| {
            // SAFETY: getuid only reads the process's user id.
            if unsafe { libc::getuid() } == 0 {
                std::os::unix::fs::chown(data.path(), Some(65534), Some(65534)).unwrap();
                command.uid(65534).gid(65534);
            }
            command.env("LC_ALL", "C").current_dir(data.path());
        };
        let mut initdb = Command::new(postgres_binary("initdb"));
        initdb
            .args([
                "-D",
                ".",
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_server_user(&mut initdb);
        let output = initdb.output().expect("running initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let port = free_port();
        let mut server = Command::new(postgres_binary("postgres"));
        server
            .args(["-D", ".", "-p", &port.to_string(), "-k", "."])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(tls.map_or(Vec::new(), |certs| {
                vec![
                    "-c".to_string(),
                    "ssl=on".to_string(),
                    "-c".to_string(),
                    format!("ssl_cert_file={}", certs.path("server.pem").display()),
                    "-c".to_string(),
                    format!("ssl_key_file={}", certs.path("server.key").display()),
                ]
            }))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_server_user(&mut server);
        let child = server.spawn().expect("starting postgres");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "postgres did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        PgServer {
            child,
            port,
            _data: data,
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real MariaDB server on a free loopback port, in its own temporary data directory, run
/// as `nobody` when the tests run as root (MariaDB refuses root). It checks no passwords
/// (`--skip-grant-tables`): any user may connect. Every connection and statement goes to
/// its general log. Stopped on drop.
pub struct MariaDbServer {
    child: Child,
    pub port: u16,
    tls: bool,
    _data: tempfile::TempDir,
}

impl MariaDbServer {
    pub fn start() -> MariaDbServer {
        Self::start_with(None)
    }

    /// A server that offers TLS with `certs`' server certificate.
    pub fn start_tls(certs: &TestCerts) -> MariaDbServer {
        Self::start_with(Some(certs))
    }

    fn start_with(tls: Option<&TestCerts>) -> MariaDbServer {
        use std::os::unix::process::CommandExt;
        let binary = ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
            .expect("no MariaDB server: install it with `apt-get install -y mariadb-server`");
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut server = Command::new(binary);
        server
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.path().display()))
            .arg(format!("--socket={}", data.path().join("sock").display()))
            .arg(format!("--pid-file={}", data.path().join("pid").display()))
            .arg(format!("--port={port}"))
            .arg(format!(
                "--general-log-file={}",
                data.path().join("general.log").display()
            ))
            .args([
                "--general-log",
                "--bind-address=127.0.0.1",
                "--skip-grant-tables",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=16M",
                "--innodb-log-file-size=8M",
                "--innodb-flush-log-at-trx-commit=0",
            ])
            .args(tls.map_or(Vec::new(), |certs| {
                vec![
                    format!("--ssl-cert={}", certs.path("server.pem").display()),
                    format!("--ssl-key={}", certs.path("server.key").display()),
                    format!("--ssl-ca={}", certs.path("ca.pem").display()),
                ]
            }))
            .current_dir(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: getuid only reads the process's user id.
        if unsafe { libc::getuid() } == 0 {
            std::os::unix::fs::chown(data.path(), Some(65534), Some(65534)).unwrap();
            server.uid(65534).gid(65534);
        }
        let mut child = server.spawn().expect("starting mariadbd");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("mariadbd exited with {status} before listening");
            }
            assert!(Instant::now() < deadline, "mariadbd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        MariaDbServer {
            child,
            port,
            tls: tls.is_some(),
            _data: data,
        }
    }

    /// The address of a database `name`, created if it does not exist yet (through the
    /// `mariadb` client).
    pub fn database(&self, name: &str) -> String {
        self.sql(&format!("CREATE DATABASE IF NOT EXISTS {name}"));
        format!("mysql://kite@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs `statement` through the `mariadb` client; its output, tab-separated, no header.
    pub fn sql(&self, statement: &str) -> String {
        let output = Command::new("mariadb")
            .args([
                "-h",
                "127.0.0.1",
                "-P",
                &self.port.to_string(),
                "-u",
                "kite",
            ])
            .args(["-N", "-B", "-e", statement])
            .args(self.tls.then_some("--ssl"))
            .output()
            .expect(
                "running the mariadb client (install it with `apt-get install -y mariadb-client`)",
            );
        assert!(
            output.status.success(),
            "{statement}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The server's general log: a `Connect` line per connection (naming TCP/IP or
    /// Socket), a line per statement.
    pub fn general_log(&self) -> String {
        std::fs::read_to_string(self._data.path().join("general.log")).unwrap_or_default()
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real mosquitto on a free loopback port, and a subscriber to `kite/#` whose messages
/// arrive on `messages`. Both are killed on drop.
pub struct MqttBroker {
    pub port: u16,
    broker: Child,
    subscriber: Child,
    messages: mpsc::Receiver<String>,
    _config: tempfile::TempDir,
}

impl MqttBroker {
    pub fn start() -> MqttBroker {
        let config = tempfile::tempdir().unwrap();
        let port = free_port();
        let file = config.path().join("mosquitto.conf");
        std::fs::write(
            &file,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\nlog_type all\n"
            ),
        )
        .unwrap();
        let mut broker = Command::new("mosquitto")
            .arg("-c")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting mosquitto (install it with `apt-get install -y mosquitto mosquitto-clients`)");
        let (log_tx, log) = mpsc::channel();
        // Its log goes to stderr, which is not buffered.
        let broker_log = broker.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(broker_log).lines().map_while(Result::ok) {
                let _ = log_tx.send(line);
            }
        });
        let wait_for = |needle: &str| loop {
            let line = log
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("mosquitto never logged {needle:?}"));
            if line.contains(needle) {
                break;
            }
            assert!(!line.contains("Error"), "mosquitto: {line}");
        };
        // The broker logs this before it listens; a subscriber that came too early would be
        // refused and exit, so wait until connections are accepted.
        wait_for("Opening ipv4 listen socket");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut subscriber = Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "kite/#",
                "-v",
            ])
            .args(["-i", "kite-test-subscriber"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mosquitto_sub");
        // Subscribed once the broker has answered the subscription.
        wait_for("Sending SUBACK to kite-test-subscriber");
        let (tx, messages) = mpsc::channel();
        let output = subscriber.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        MqttBroker {
            port,
            broker,
            subscriber,
            messages,
            _config: config,
        }
    }

    pub fn next_message(&self) -> String {
        self.messages
            .recv_timeout(Duration::from_secs(60))
            .expect("no message arrived")
    }
}

impl Drop for MqttBroker {
    fn drop(&mut self) {
        let _ = self.subscriber.kill();
        let _ = self.broker.kill();
        let _ = self.subscriber.wait();
        let _ = self.broker.wait();
    }
}
