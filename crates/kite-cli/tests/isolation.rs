//! One request never sees another's memory: memory slots are reused for speed, but every
//! instance starts from the component's initial image.

mod common;
use common::{Server, TestApp};

#[tokio::test]
async fn each_request_starts_from_clean_memory() {
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"c\"\n[component.c]\nsource = \"PROBE\"\n",
    );
    let server = Server::start(&app);
    for i in 0..20 {
        let reply = server.get(&format!("/remember?value=secret-{i}")).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "previous= heap=clean"),
            "request {i} saw what an earlier one left"
        );
    }
}
