//! App variables reach components through wasi:config/store and fermyon:spin/variables,
//! from every provider, with required values enforced and secrets kept out of the log.

mod common;
use common::{kite, Server, TestApp};

const SECRET: &str = "s3cr3t-t0ken-value";

fn app() -> TestApp {
    TestApp::probe(
        "[variables]\napi_url = { default = \"https://example.com\" }\napi_token = { required = true, secret = true }\n\
         [[route]]\npath = \"/...\"\ncomponent = \"reader\"\n\
         [component.reader]\nsource = \"PROBE\"\nvariables = { url = \"{{ api_url }}/v1\", token = \"{{ api_token }}\" }\n",
    )
}

fn start(app: &TestApp, env: &[(&str, &str)], extra: &[&str]) -> Server {
    let mut command = kite();
    command
        .args(["up", "--listen", "127.0.0.1:0", "--no-cache", "-f"])
        .arg(app.path())
        .args(extra);
    for (k, v) in env {
        command.env(k, v);
    }
    Server::spawn(command)
}

#[tokio::test]
async fn components_read_their_variables_through_both_interfaces() {
    let app = app();
    let server = start(&app, &[], &["--variable", &format!("api_token={SECRET}")]);
    assert_eq!(
        server.get("/config?key=url").await.body,
        "https://example.com/v1"
    );
    assert_eq!(server.get("/config?key=token").await.body, SECRET);
    assert_eq!(
        server.get("/config?key=api_url").await.status,
        404,
        "app variables are not visible directly"
    );
    assert_eq!(
        server.get("/config-all").await.body,
        format!("token={SECRET}\nurl=https://example.com/v1")
    );
    assert_eq!(
        server.get("/spin-variable?name=url").await.body,
        "https://example.com/v1"
    );
    let undefined = server.get("/spin-variable?name=nope").await;
    assert!(undefined.body.contains("Undefined"), "{}", undefined.body);
    let invalid = server.get("/spin-variable?name=Bad-Name").await;
    assert!(invalid.body.contains("InvalidName"), "{}", invalid.body);
    let log = server.wait_for_log("GET /spin-variable?name=Bad-Name");
    assert!(
        !log.contains(SECRET),
        "the secret leaked into the log:\n{log}"
    );
}

#[tokio::test]
async fn providers_environment_dotenv_and_command_line() {
    let app = app();
    std::fs::write(
        app.path().join(".env"),
        "# dotenv\nKITE_VARIABLE_API_TOKEN=from-dotenv\nKITE_VARIABLE_API_URL=http://dotenv.test\n",
    )
    .unwrap();
    let server = start(&app, &[], &[]);
    assert_eq!(server.get("/config?key=token").await.body, "from-dotenv");
    assert_eq!(
        server.get("/config?key=url").await.body,
        "http://dotenv.test/v1"
    );
    drop(server);

    let server = start(&app, &[("KITE_VARIABLE_API_TOKEN", "from-env")], &[]);
    assert_eq!(
        server.get("/config?key=token").await.body,
        "from-env",
        "the environment beats dotenv"
    );
    drop(server);

    let server = start(
        &app,
        &[("KITE_VARIABLE_API_TOKEN", "from-env")],
        &["--variable", "api_token=from-cli"],
    );
    assert_eq!(
        server.get("/config?key=token").await.body,
        "from-cli",
        "--variable beats everything"
    );
}

#[test]
fn a_required_variable_without_a_value_stops_kite_up() {
    let app = app();
    let mut command = kite();
    command
        .args(["up", "--listen", "127.0.0.1:0", "--no-cache", "-f"])
        .arg(app.path())
        .env_remove("KITE_VARIABLE_API_TOKEN");
    let stderr = common::expect_failure(command);
    assert!(
        stderr.contains("variable `api_token` is required"),
        "{stderr}"
    );
    assert!(
        stderr.contains("KITE_VARIABLE_API_TOKEN") && stderr.contains("--variable api_token="),
        "{stderr}"
    );

    let stderr = common::up_fails(&app, &["--variable", "nope=1"]);
    assert!(stderr.contains("declares no variable `nope`"), "{stderr}");
}
