//! `kite apps`: list, inspect, roll back, remove and configure the apps on a `kite serve`
//! host through its admin API.

use super::client::{AdminClient, ServerArgs};
use serde_json::{json, Value};

/// Manage the apps on a `kite serve` host.
#[derive(clap::Args, Debug)]
pub struct AppsArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    #[command(subcommand)]
    pub command: AppsCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum AppsCommand {
    /// List the apps, their versions and status.
    List {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one app: versions, routes, hosts, quotas, variable names, status.
    Show {
        name: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an app with all its versions and data.
    Rm { name: String },
    /// Make the version before the current one current again.
    Rollback { name: String },
    /// Load the current version again (after changing variables or quotas).
    Redeploy { name: String },
    /// Set app variables and secrets (values are never shown again).
    Vars {
        name: String,
        /// `NAME=VALUE` to set, `NAME` alone with --unset to remove.
        #[arg(value_name = "NAME=VALUE", required = true)]
        values: Vec<String>,
        /// Remove the named variables instead.
        #[arg(long)]
        unset: bool,
    },
    /// Set quotas (unset ones take the host's defaults).
    Quotas {
        name: String,
        /// Requests served at once.
        #[arg(long, value_name = "N")]
        max_concurrency: Option<u32>,
        /// Sustained requests per second.
        #[arg(long, value_name = "N")]
        requests_per_second: Option<u32>,
        /// Requests above the rate allowed at once.
        #[arg(long, value_name = "N")]
        burst: Option<u32>,
        /// Linear memory per instance.
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        memory: Option<u64>,
        /// Bytes of files in a bundle.
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        bundle_size: Option<u64>,
        /// Size each store and database may grow to.
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        store_size: Option<u64>,
        /// Unset a quota, so that the host's default applies again (repeatable), e.g.
        /// `--unset requests_per_second`.
        #[arg(long, value_name = "QUOTA")]
        unset: Vec<String>,
    },
    /// Requests, responses by status class and refusals since the host started.
    Stats { name: String },
    /// Follow the app's log (access lines, its components' output, failures) until Ctrl-C.
    Logs { name: String },
}

fn parse_size(text: &str) -> Result<u64, String> {
    kite_app::parse_size(text)
}

pub fn run(args: AppsArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.server)?;
    match args.command {
        AppsCommand::List { json } => {
            let apps = client.call_ok("GET", "/v1/apps", None)?;
            if json {
                return print_json(&apps);
            }
            let apps = apps.as_array().cloned().unwrap_or_default();
            if apps.is_empty() {
                println!("No apps deployed. Deploy one with `kite deploy`.");
            }
            for app in apps {
                println!(
                    "{}  version {}  {}  {}",
                    text(&app["name"]),
                    app["current_version"]
                        .as_u64()
                        .map_or("-".to_string(), |v| v.to_string()),
                    text(&app["status"]),
                    text(&app["url"])
                );
            }
        }
        AppsCommand::Show { name, json } => {
            let app = client.call_ok("GET", &format!("/v1/apps/{name}"), None)?;
            if json {
                return print_json(&app);
            }
            print_app(&app);
        }
        AppsCommand::Rm { name } => {
            client.call_ok("DELETE", &format!("/v1/apps/{name}"), None)?;
            println!("Removed `{name}`");
        }
        AppsCommand::Rollback { name } => {
            let app = client.call_ok("POST", &format!("/v1/apps/{name}/rollback"), None)?;
            println!(
                "`{name}` is at version {}",
                app["current_version"].as_u64().unwrap_or(0)
            );
        }
        AppsCommand::Redeploy { name } => {
            let app = client.call_ok("POST", &format!("/v1/apps/{name}/redeploy"), None)?;
            println!(
                "`{name}` version {} loaded again",
                app["current_version"].as_u64().unwrap_or(0)
            );
        }
        AppsCommand::Vars {
            name,
            values,
            unset,
        } => {
            let mut changes = serde_json::Map::new();
            for item in values {
                if unset {
                    changes.insert(item, Value::Null);
                } else {
                    let (key, value) = item
                        .split_once('=')
                        .ok_or_else(|| anyhow::anyhow!("expected NAME=VALUE, got {item:?}"))?;
                    changes.insert(key.to_string(), Value::String(value.to_string()));
                }
            }
            let app = client.call_ok(
                "PATCH",
                &format!("/v1/apps/{name}/variables"),
                Some(&Value::Object(changes)),
            )?;
            println!("`{name}` variables: {}", names(&app["variables"]));
        }
        AppsCommand::Quotas {
            name,
            max_concurrency,
            requests_per_second,
            burst,
            memory,
            bundle_size,
            store_size,
            unset,
        } => {
            let mut changes = serde_json::Map::new();
            let mut put = |key: &str, value: Option<u64>| {
                if let Some(value) = value {
                    changes.insert(key.to_string(), json!(value));
                }
            };
            put("max_concurrency", max_concurrency.map(u64::from));
            put("requests_per_second", requests_per_second.map(u64::from));
            put("burst", burst.map(u64::from));
            put("memory", memory);
            put("bundle_size", bundle_size);
            put("store_size", store_size);
            for quota in unset {
                changes.insert(quota, Value::Null);
            }
            let app = client.call_ok(
                "PATCH",
                &format!("/v1/apps/{name}/quotas"),
                Some(&Value::Object(changes)),
            )?;
            println!("`{name}` quotas in effect: {}", app["effective_quotas"]);
        }
        AppsCommand::Logs { name } => {
            client.follow(&format!("/v1/apps/{name}/logs"), |line| println!("{line}"))?;
        }
        AppsCommand::Stats { name } => {
            let stats = client.call_ok("GET", &format!("/v1/apps/{name}/stats"), None)?;
            print_json(&stats)?;
        }
    }
    Ok(())
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

fn names(list: &Value) -> String {
    let names: Vec<&str> = list
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    }
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_app(app: &Value) {
    println!("App `{}`: {}", text(&app["name"]), text(&app["status"]));
    println!("  url: {}", text(&app["url"]));
    let hosts: Vec<&str> = app["hosts"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    println!("  hosts: {}", hosts.join(", "));
    let current = app["current_version"].as_u64();
    println!("  versions:");
    for version in app["versions"].as_array().cloned().unwrap_or_default() {
        let number = version["version"].as_u64();
        println!(
            "    {} {}  {}  {} bytes  sha256:{}",
            if number == current { "*" } else { " " },
            number.unwrap_or(0),
            text(&version["deployed_at"]),
            version["size"].as_u64().unwrap_or(0),
            text(&version["bundle_sha256"])
        );
    }
    println!("  routes:");
    for route in app["routes"].as_array().cloned().unwrap_or_default() {
        println!(
            "    {}  ->  {}",
            text(&route["route"]),
            text(&route["component"])
        );
    }
    println!("  quotas in effect: {}", app["effective_quotas"]);
    println!("  variables: {}", names(&app["variables"]));
}
