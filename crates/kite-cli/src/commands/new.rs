//! `kite new <template> <name>`: writes a ready-to-build app from one of the templates
//! embedded in the binary (they live in the repository's `templates/` directory).

use anyhow::{bail, Context};
use std::path::PathBuf;

/// Create a new app from a template.
#[derive(clap::Args, Debug)]
pub struct NewArgs {
    /// Template to start from.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(TEMPLATES.iter().map(|t| t.name)))]
    pub template: String,

    /// Name of the app (and of its directory).
    pub name: String,

    /// Create the app in this directory instead of `./<name>`.
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

struct Template {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
}

const TEMPLATES: &[Template] = &[
    Template {
        name: "http-rust",
        files: &[
            (
                "Cargo.toml",
                include_str!("../../../../templates/http-rust/Cargo.toml.tmpl"),
            ),
            (
                "kite.toml",
                include_str!("../../../../templates/http-rust/kite.toml.tmpl"),
            ),
            (
                "src/lib.rs",
                include_str!("../../../../templates/http-rust/src/lib.rs"),
            ),
            (
                ".gitignore",
                include_str!("../../../../templates/http-rust/gitignore.tmpl"),
            ),
            (
                "README.md",
                include_str!("../../../../templates/http-rust/README.md.tmpl"),
            ),
        ],
    },
    Template {
        name: "http-rust-p2",
        files: &[
            (
                "Cargo.toml",
                include_str!("../../../../templates/http-rust-p2/Cargo.toml.tmpl"),
            ),
            (
                "kite.toml",
                include_str!("../../../../templates/http-rust-p2/kite.toml.tmpl"),
            ),
            (
                "src/lib.rs",
                include_str!("../../../../templates/http-rust-p2/src/lib.rs"),
            ),
            (
                ".gitignore",
                include_str!("../../../../templates/http-rust-p2/gitignore.tmpl"),
            ),
            (
                "README.md",
                include_str!("../../../../templates/http-rust-p2/README.md.tmpl"),
            ),
        ],
    },
    Template {
        name: "http-python",
        files: &[
            (
                "kite.toml",
                include_str!("../../../../templates/http-python/kite.toml.tmpl"),
            ),
            (
                "app.py",
                include_str!("../../../../templates/http-python/app.py"),
            ),
            (
                ".gitignore",
                include_str!("../../../../templates/http-python/gitignore.tmpl"),
            ),
            (
                "README.md",
                include_str!("../../../../templates/http-python/README.md.tmpl"),
            ),
        ],
    },
    Template {
        name: "http-js",
        files: &[
            (
                "kite.toml",
                include_str!("../../../../templates/http-js/kite.toml.tmpl"),
            ),
            (
                "package.json",
                include_str!("../../../../templates/http-js/package.json.tmpl"),
            ),
            (
                "app.js",
                include_str!("../../../../templates/http-js/app.js"),
            ),
            (
                "wit/world.wit",
                include_str!("../../../../templates/http-js/wit/world.wit"),
            ),
            (
                ".gitignore",
                include_str!("../../../../templates/http-js/gitignore.tmpl"),
            ),
            (
                "README.md",
                include_str!("../../../../templates/http-js/README.md.tmpl"),
            ),
        ],
    },
];

pub fn run(args: NewArgs) -> anyhow::Result<()> {
    let valid = args.name.starts_with(|c: char| c.is_ascii_lowercase())
        && args
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!(
            "app name {:?} must start with a lowercase letter and use only lowercase letters, digits, `-` and `_`",
            args.name
        );
    }
    let template = TEMPLATES
        .iter()
        .find(|t| t.name == args.template)
        .context("unknown template")?;
    let dir = args.output.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists()
        && dir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty; choose another name or `--output`",
            dir.display()
        );
    }
    let crate_name = args.name.replace('-', "_");
    for (path, text) in template.files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let text = text
            .replace("{{name}}", &args.name)
            .replace("{{crate_name}}", &crate_name);
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
    }
    println!(
        "Created app `{}` in {} from template `{}`.",
        args.name,
        dir.display(),
        template.name
    );
    println!("Next: cd {} && kite up --build", dir.display());
    Ok(())
}
