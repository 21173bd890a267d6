//! `kite deploy`: packs an app into a bundle (manifest, granted files, every component's
//! Wasm), uploads it to a `kite serve` host and prints where it answers.

use super::client::{AdminClient, ServerArgs};
use super::AppLocation;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Deploy an app to a `kite serve` host: a new version, live once it has loaded.
#[derive(clap::Args, Debug)]
pub struct DeployArgs {
    #[command(flatten)]
    pub app: AppLocation,

    #[command(flatten)]
    pub server: ServerArgs,

    /// The app's name on the host [default: the manifest's app name].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// A host name the app answers on besides `<name>.<domain>` (repeatable; replaces the
    /// ones given before).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,

    /// Run each component's build command first.
    #[arg(long)]
    pub build: bool,

    /// Where components published at a URL are downloaded to [default: the compile cache
    /// directory].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Write the bundle (a gzip'd tar) to FILE instead of uploading it; no server needed.
    /// `POST /v1/apps/<name>/versions` deploys such a file.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Bundles above this size get a progress bar on a terminal.
const PROGRESS_ABOVE: u64 = 1 << 20;

pub fn run(args: DeployArgs) -> anyhow::Result<()> {
    let mut app = args.app.load()?;
    if args.build {
        super::build::build_app(&app)?;
    }
    let downloads = args
        .cache_dir
        .clone()
        .or_else(kite_engine::CompileCache::default_dir)
        .unwrap_or_else(|| app.dir.join(".kite"))
        .join("downloads");
    super::up::fetch_downloads(&mut app, &downloads, &kite_app::RuntimeConfig::default())?;
    app.check_sources()?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => app_name(&app.name),
    };
    let bundle = kite_platform::bundle::pack(&app)?;
    if let Some(output) = &args.output {
        std::fs::write(output, &bundle.bytes)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", output.display()))?;
        println!(
            "Packed `{name}` into {} ({} files, {} bytes, {} compressed)",
            output.display(),
            bundle.files,
            bundle.unpacked_size,
            bundle.bytes.len()
        );
        return Ok(());
    }
    let client = AdminClient::new(&args.server)?;
    let mut path = format!("/v1/apps/{name}/versions");
    if !args.hosts.is_empty() {
        let query: Vec<String> = args
            .hosts
            .iter()
            .map(|h| format!("host={}", url_escape(h)))
            .collect();
        path = format!("{path}?{}", query.join("&"));
    }
    let length = bundle.bytes.len() as u64;
    let bar = (std::io::stderr().is_terminal() && length > PROGRESS_ABOVE).then(|| {
        let bar = ProgressBar::new(length);
        bar.set_style(
            ProgressStyle::with_template("uploading {bytes}/{total_bytes} {wide_bar} {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let mut reader: Box<dyn std::io::Read> = match &bar {
        Some(bar) => Box::new(bar.wrap_read(bundle.bytes.as_slice())),
        None => Box::new(bundle.bytes.as_slice()),
    };
    let answer = client.call(
        "POST",
        &path,
        Some((&mut reader, length, "application/gzip")),
    );
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let view = answer?
        .ok()
        .map_err(|e| anyhow::anyhow!("deploying `{name}`: {e}"))?;
    let version = view["current_version"].as_u64().unwrap_or(0);
    println!(
        "Deployed `{name}` version {version} ({} files, {} bytes)",
        bundle.files, bundle.unpacked_size
    );
    if let Some(routes) = view["routes"].as_array() {
        for route in routes {
            println!(
                "  {}  ->  {}",
                route["route"].as_str().unwrap_or(""),
                route["component"].as_str().unwrap_or("")
            );
        }
    }
    println!("{}", view["url"].as_str().unwrap_or(""));
    Ok(())
}

/// The manifest's app name as a host name label: lowercase, other characters as `-`.
fn app_name(manifest_name: &str) -> String {
    let name: String = manifest_name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name.trim_matches('-').chars().take(63).collect()
}

fn url_escape(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
