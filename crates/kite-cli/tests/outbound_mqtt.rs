//! Outbound MQTT (`fermyon:spin/mqtt`) against a real mosquitto: messages published at
//! every quality of service arrive; brokers the grant does not name are refused.

mod common;
use common::{MqttBroker, Server, TestApp};

fn app(rules: &str) -> TestApp {
    TestApp::spin(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"mqtt\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n\
         [component.probe]\nsource = \"PROBE\"\nallowed_outbound_hosts = [{rules}]\n"
    ))
}

#[tokio::test]
async fn messages_arrive_at_every_quality_of_service() {
    let broker = MqttBroker::start();
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
    let broker = MqttBroker::start();
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
