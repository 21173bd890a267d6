//! Every kind of manifest mistake is a load error naming the file, line and key.

use kite_app::{load_app, ManifestError};

const GOOD_COMPONENT: &str = r#"
[component.hello]
source = "hello.wasm"
"#;

fn write_app(manifest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kite.toml"), manifest).unwrap();
    std::fs::write(dir.path().join("hello.wasm"), b"\0asm").unwrap();
    std::fs::create_dir(dir.path().join("static")).unwrap();
    dir
}

fn load_err(manifest: &str) -> ManifestError {
    let dir = write_app(manifest);
    let err = load_app(dir.path()).expect_err("manifest should be rejected");
    assert!(err.file.ends_with("kite.toml"), "{err}");
    err
}

fn header() -> String {
    "manifest_version = 1\n[app]\nname = \"t\"\n".to_string()
}

#[test]
fn a_good_manifest_loads_with_defaults() {
    let manifest = format!(
        "{}[[route]]\npath = \"/hello\"\ncomponent = \"hello\"\n{GOOD_COMPONENT}",
        header()
    );
    let dir = write_app(&manifest);
    let app = load_app(dir.path()).unwrap();
    let hello = app.component("hello").unwrap();
    assert_eq!(hello.limits.memory, 128 << 20);
    assert_eq!(hello.limits.timeout.as_secs(), 30);
    assert!(hello.files.is_empty() && hello.environment.is_empty());
    assert!(hello.allowed_outbound_hosts.is_empty());
    assert_eq!(app.routes().count(), 1);
    app.check_sources().unwrap();
}

#[test]
fn unknown_keys_are_named_with_their_line() {
    let err = load_err(&format!("{}{GOOD_COMPONENT}colour = \"red\"\n", header()));
    assert_eq!(err.location.unwrap().line, 7, "{err}");
    assert_eq!(err.key, "component.hello.colour");
    assert!(err.message.contains("unknown field `colour`"), "{err}");
    let text = err.to_string();
    assert!(text.contains("kite.toml:7:"), "{text}");
}

#[test]
fn a_route_to_an_unknown_component() {
    let err = load_err(&format!(
        "{}[[route]]\npath = \"/x\"\ncomponent = \"nope\"\n{GOOD_COMPONENT}",
        header()
    ));
    assert_eq!(err.key, "route[0].component");
    assert_eq!(err.location.unwrap().line, 6);
    assert!(
        err.message
            .contains("\"nope\", which is not defined (defined: hello)"),
        "{err}"
    );
}

#[test]
fn two_routes_with_the_same_path() {
    let err = load_err(&format!(
        "{}[[route]]\npath = \"/users/:id\"\ncomponent = \"hello\"\n[[route]]\npath = \"/users/:name/\"\ncomponent = \"hello\"\n{GOOD_COMPONENT}",
        header()
    ));
    assert_eq!(err.key, "route[1].path");
    assert_eq!(err.location.unwrap().line, 8);
    assert!(
        err.message
            .contains("duplicates route \"/users/:id\" on line 5"),
        "{err}"
    );
}

#[test]
fn a_missing_source_file() {
    let dir = write_app(&format!(
        "{}[component.gone]\nsource = \"gone.wasm\"\nbuild = {{ command = \"true\" }}\n",
        header()
    ));
    let app = load_app(dir.path()).unwrap();
    let err = app.check_sources().unwrap_err();
    assert_eq!(err.key, "component.gone.source");
    assert_eq!(err.location.unwrap().line, 5);
    assert!(
        err.message.contains("does not exist (run `kite build`"),
        "{err}"
    );
}

#[test]
fn files_outside_the_app_directory() {
    let err = load_err(&format!(
        "{}{GOOD_COMPONENT}files = [{{ source = \"..\", destination = \"/up\" }}]\n",
        header()
    ));
    assert_eq!(err.key, "component.hello.files[0].source");
    assert_eq!(err.location.unwrap().line, 7);
    assert!(err.message.contains("outside the app directory"), "{err}");

    let dir = write_app(&format!(
        "{}{GOOD_COMPONENT}files = [{{ source = \"link\", destination = \"/up\" }}]\n",
        header()
    ));
    std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
    let err = load_app(dir.path()).unwrap_err();
    assert!(err.message.contains("outside the app directory"), "{err}");

    let err = load_err(&format!(
        "{}{GOOD_COMPONENT}files = [{{ source = \"static\", destination = \"/a/../b\" }}]\n",
        header()
    ));
    assert_eq!(err.key, "component.hello.files[0].destination");
}

#[test]
fn a_bad_host_pattern() {
    let err = load_err(&format!(
        "{}{GOOD_COMPONENT}allowed_outbound_hosts = [\"https://ok.com\", \"example.com\"]\n",
        header()
    ));
    assert_eq!(err.key, "component.hello.allowed_outbound_hosts[1]");
    assert_eq!(err.location.unwrap().line, 7);
    assert!(
        err.message
            .contains("invalid outbound host \"example.com\""),
        "{err}"
    );
}

#[test]
fn bad_sizes_and_durations() {
    let err = load_err(&format!(
        "{}{GOOD_COMPONENT}limits = {{ memory = \"64XB\" }}\n",
        header()
    ));
    assert_eq!(err.key, "component.hello.limits.memory");
    assert_eq!(err.location.unwrap().line, 7);
    assert!(err.message.contains("invalid size \"64XB\""), "{err}");

    let err = load_err(&format!(
        "{}{GOOD_COMPONENT}[component.hello.limits]\ntimeout = \"soon\"\n",
        header()
    ));
    assert_eq!(err.key, "component.hello.limits.timeout");
    assert_eq!(err.location.unwrap().line, 8);
    assert!(err.message.contains("invalid duration \"soon\""), "{err}");
}

#[test]
fn bad_concurrency_limits() {
    let err = load_err(&format!(
        "{}{GOOD_COMPONENT}limits = {{ max_concurrency = 0 }}\n",
        header()
    ));
    assert_eq!(err.key, "component.hello.limits.max_concurrency");
    assert_eq!(err.location.unwrap().line, 7);
    assert!(err.message.contains("at least 1, got 0"), "{err}");
}

#[test]
fn variable_declarations_and_templates() {
    let err = load_err(&format!(
        "{}[variables]\nx = {{}}\n{GOOD_COMPONENT}",
        header()
    ));
    assert_eq!(err.key, "variables.x");
    assert!(
        err.message
            .contains("`default = \"...\"` or mark it `required = true`"),
        "{err}"
    );

    let err = load_err(&format!(
        "{}[variables]\nx = {{ default = \"a\", required = true }}\n{GOOD_COMPONENT}",
        header()
    ));
    assert!(err.message.contains("not both"), "{err}");

    let err = load_err(&format!(
        "{}[variables]\nx = {{ default = \"a\" }}\n{GOOD_COMPONENT}variables = {{ v = \"{{{{ y }}}}\" }}\n",
        header()
    ));
    assert_eq!(err.key, "component.hello.variables.v");
    assert_eq!(err.location.unwrap().line, 9);
    assert!(
        err.message.contains("refers to `y`, which is not declared"),
        "{err}"
    );

    let err = load_err(&format!(
        "{}{GOOD_COMPONENT}variables = {{ v = \"{{{{ y\" }}\n",
        header()
    ));
    assert!(err.message.contains("without a closing"), "{err}");

    let err = load_err(&format!(
        "{}[variables]\nx = {{ default = \"a\", secrett = true }}\n{GOOD_COMPONENT}",
        header()
    ));
    assert!(err.message.contains("unknown field `secrett`"), "{err}");
}

#[test]
fn store_grants_need_a_backend() {
    let dir = write_app(&format!(
        "{}{GOOD_COMPONENT}key_value_stores = [\"default\", \"cache\"]\nsqlite_databases = [\"reports\"]\n",
        header()
    ));
    let app = load_app(dir.path()).unwrap();
    assert_eq!(app.components[0].key_value_stores, vec!["default", "cache"]);
    let err = app.check_store_grants(&[], &[]).unwrap_err();
    assert_eq!(err.key, "component.hello.key_value_stores[1]");
    assert_eq!(err.location.unwrap().line, 7);
    assert!(
        err.message
            .contains("no backend is configured for key-value store \"cache\""),
        "{err}"
    );
    assert!(err.message.contains("[key_value_store.cache]"), "{err}");
    let err = app.check_store_grants(&["cache".into()], &[]).unwrap_err();
    assert_eq!(err.key, "component.hello.sqlite_databases[0]");
    assert_eq!(err.location.unwrap().line, 8);
    app.check_store_grants(&["cache".into()], &["reports".into()])
        .unwrap();
}

#[test]
fn syntax_errors_and_versions() {
    let err = load_err("manifest_version = 1\n[app\n");
    assert_eq!(err.location.unwrap().line, 2, "{err}");
    let err = load_err(&format!(
        "manifest_version = 2\n[app]\nname = \"t\"\n{GOOD_COMPONENT}"
    ));
    assert_eq!(err.key, "manifest_version");
    assert!(err.message.contains("unsupported manifest version 2"));
    let err = load_err("[app]\nname = \"t\"\n");
    assert!(err.message.contains("manifest_version"), "{err}");
}

#[test]
fn bad_component_ids() {
    let err = load_err(&format!(
        "{}[component.Hello]\nsource = \"hello.wasm\"\n",
        header()
    ));
    assert_eq!(err.key, "component.Hello");
    assert!(
        err.message.contains("may only contain lowercase letters"),
        "{err}"
    );
}

#[test]
fn a_missing_manifest_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_app(dir.path()).unwrap_err();
    assert!(err.message.contains("cannot read manifest"), "{err}");
    assert!(err.message.contains("kite new"), "{err}");
}

#[test]
fn templated_hosts_are_checked_with_defaults_and_resolved_at_start() {
    let manifest = |default: &str| {
        format!(
            "{}[variables]\napi_host = {{ default = \"{default}\" }}\n{GOOD_COMPONENT}allowed_outbound_hosts = [\"https://{{{{ api_host }}}}\"]\n",
            header()
        )
    };
    let err = load_err(&manifest("bad host!"));
    assert_eq!(err.key, "component.hello.allowed_outbound_hosts[0]");
    assert_eq!(err.location.unwrap().line, 9);
    assert!(err.message.contains("defaults"), "{err}");

    let dir = write_app(&manifest("api.example.com"));
    let mut app = load_app(dir.path()).unwrap();
    assert!(app.components[0].allowed_outbound_hosts.is_empty());
    let variables = kite_app::ResolvedVariables::resolve(
        &app.variables,
        &kite_app::VariableSources::load(
            vec![("api_host".into(), "other.example.com".into())],
            &[],
        )
        .unwrap(),
    )
    .unwrap();
    app.resolve_outbound_templates(&variables).unwrap();
    let rules = &app.components[0].allowed_outbound_hosts;
    assert!(rules[0].allows("https", "other.example.com", 443));
    assert!(!rules[0].allows("https", "api.example.com", 443));

    let err = load_err(&format!(
        "{}{GOOD_COMPONENT}allowed_outbound_hosts = [\"https://{{{{ nowhere }}}}\"]\n",
        header()
    ));
    assert!(err.message.contains("not declared"), "{err}");
}

#[test]
fn a_private_route_has_no_path_and_every_other_route_has_one() {
    let manifest = format!(
        "{}[[route]]\nprivate = true\ncomponent = \"hello\"\n{GOOD_COMPONENT}",
        header()
    );
    let dir = write_app(&manifest);
    let app = load_app(dir.path()).unwrap();
    assert_eq!(app.routes().count(), 0, "a private route serves no path");
    assert!(matches!(app.triggers[0].route, kite_app::Route::Private));

    let both = load_err(&format!(
        "{}[[route]]\npath = \"/x\"\nprivate = true\ncomponent = \"hello\"\n{GOOD_COMPONENT}",
        header()
    ));
    assert_eq!(both.key, "route[0].path");
    assert!(both.message.contains("private route has no path"), "{both}");

    let neither = load_err(&format!(
        "{}[[route]]\ncomponent = \"hello\"\n{GOOD_COMPONENT}",
        header()
    ));
    assert_eq!(neither.key, "route[0]");
    assert!(neither.message.contains("needs a `path`"), "{neither}");
}
