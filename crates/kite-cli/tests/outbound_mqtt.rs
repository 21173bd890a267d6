//! Outbound MQTT (`fermyon:spin/mqtt`) against a real mosquitto: messages published at
//! every quality of service arrive; brokers the grant does not name are refused.

mod common;
use common::{free_port, Server, TestApp};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A real mosquitto on a free loopback port, and a subscriber to `kite/#` whose messages
/// arrive on `messages`. Both are killed on drop.
struct Broker {
    port: u16,
    broker: Child,
    subscriber: Child,
    messages: mpsc::Receiver<String>,
    _config: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
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
        };
        wait_for("Opening ipv4 listen socket");
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
        Broker {
            port,
            broker,
            subscriber,
            messages,
            _config: config,
        }
    }

    fn next_message(&self) -> String {
        self.messages
            .recv_timeout(Duration::from_secs(60))
            .expect("no message arrived")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.subscriber.kill();
        let _ = self.broker.kill();
        let _ = self.subscriber.wait();
        let _ = self.broker.wait();
    }
}

fn app(rules: &str) -> TestApp {
    TestApp::spin(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"mqtt\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n\
         [component.probe]\nsource = \"PROBE\"\nallowed_outbound_hosts = [{rules}]\n"
    ))
}

#[tokio::test]
async fn messages_arrive_at_every_quality_of_service() {
    let broker = Broker::start();
    let app = app(&format!("\"mqtt://127.0.0.1:{}\"", broker.port));
    let server = Server::start(&app);
    let address = format!("mqtt://127.0.0.1:{}?client_id=probe", broker.port);
    for qos in ["0", "1", "2"] {
        let reply = server
            .get(&format!(
                "/mqtt?address={address}&topic=kite/q{qos}&value=hello-{qos}&qos={qos}"
            ))
            .await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "published"),
            "qos {qos}"
        );
        assert_eq!(broker.next_message(), format!("kite/q{qos} hello-{qos}"));
    }
}

#[tokio::test]
async fn brokers_outside_the_grant_are_refused() {
    let broker = Broker::start();
    let app = app("\"mqtt://127.0.0.1:1\"");
    let server = Server::start(&app);
    let address = format!("mqtt://127.0.0.1:{}?client_id=probe", broker.port);
    let reply = server
        .get(&format!(
            "/mqtt?address={address}&topic=kite/x&value=x&qos=1"
        ))
        .await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert!(reply.body.contains("is not permitted"), "{}", reply.body);
    server.wait_for_log(&format!(
        "add \"mqtt://127.0.0.1:{}\" to `allowed_outbound_hosts`",
        broker.port
    ));
    let reply = server.get("/mqtt?address=ftp://x&topic=t&value=v").await;
    assert!(reply.body.contains("InvalidAddress"), "{}", reply.body);
}
