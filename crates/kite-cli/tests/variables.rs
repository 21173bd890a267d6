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

/// A runtime configuration whose providers are an environment prefix, a secrets
/// directory and a dotenv file, in that order; the default chain is then not consulted.
fn app_with_providers() -> TestApp {
    let app = app();
    let secrets = app.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("api_token"), format!("{SECRET}\n")).unwrap();
    std::fs::write(
        app.path().join("prod.env"),
        "MYAPP_API_URL=http://dotenv.test\nMYAPP_API_TOKEN=from-dotenv\n",
    )
    .unwrap();
    std::fs::write(
        app.path().join("runtime.toml"),
        "[[variable_provider]]\ntype = \"env\"\nprefix = \"MYAPP_\"\n\
         [[variable_provider]]\ntype = \"directory\"\npath = \"secrets\"\n\
         [[variable_provider]]\ntype = \"dotenv\"\npath = \"prod.env\"\nprefix = \"MYAPP_\"\n",
    )
    .unwrap();
    app
}

#[tokio::test]
async fn providers_from_the_runtime_configuration() {
    let app = app_with_providers();
    let config = app.path().join("runtime.toml");
    let config = config.to_str().unwrap();
    // A secret file beats the dotenv file listed after it; the default chain is off.
    let server = start(
        &app,
        &[("KITE_VARIABLE_API_URL", "http://ignored.test")],
        &["--runtime-config", config],
    );
    assert_eq!(server.get("/config?key=token").await.body, SECRET);
    assert_eq!(
        server.get("/config?key=url").await.body,
        "http://dotenv.test/v1"
    );
    let log = server.wait_for_log("GET /config?key=url");
    assert!(!log.contains(SECRET), "the secret leaked:\n{log}");
    drop(server);

    // The environment provider, listed first, beats both files.
    let server = start(
        &app,
        &[("MYAPP_API_TOKEN", "from-env")],
        &["--runtime-config", config],
    );
    assert_eq!(server.get("/config?key=token").await.body, "from-env");
}

#[test]
fn runtime_configuration_provider_errors() {
    let app = app_with_providers();
    let config = app.path().join("runtime.toml");
    let config = config.to_str().unwrap();
    std::fs::remove_file(app.path().join("secrets/api_token")).unwrap();
    std::fs::write(app.path().join("prod.env"), "MYAPP_API_URL=x\n").unwrap();
    let stderr = common::up_fails(&app, &["--runtime-config", config]);
    let secret_file = app.path().join("secrets").join("api_token");
    assert!(
        stderr.contains(&format!(
            "variable `api_token` is required and has no value: set MYAPP_API_TOKEN in the environment, write it to {}, set MYAPP_API_TOKEN in {}, or pass `--variable api_token=VALUE`",
            secret_file.display(),
            app.path().join("prod.env").display()
        )),
        "{stderr}"
    );

    let stderr = common::up_fails(&app, &["--runtime-config", config, "--env-file", "x.env"]);
    assert!(
        stderr.contains(
            "--env-file x.env: the runtime configuration lists its own variable providers"
        ),
        "{stderr}"
    );

    std::fs::remove_dir_all(app.path().join("secrets")).unwrap();
    let stderr = common::up_fails(&app, &["--runtime-config", config]);
    assert!(
        stderr.contains("is not a directory") && stderr.contains("secrets"),
        "{stderr}"
    );
}
