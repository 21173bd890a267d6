//! One manifest file being loaded: its text, path and directory, and the helpers every
//! format uses to parse it strictly and to point errors at a line and key.

use crate::{Location, ManifestError};
use serde::de::DeserializeOwned;
use std::ops::Range;
use std::path::Path;

pub(crate) struct ManifestSource<'a> {
    pub text: &'a str,
    pub file: &'a Path,
    /// The directory holding the manifest; relative paths in it are resolved from here.
    pub dir: &'a Path,
    /// Set when `text` is not the file's but part of it rewritten (an inline table): every
    /// error then points at where that part is written.
    pub pinned: Option<Location>,
    /// Put before the keys serde reports (the part's place in the file, e.g.
    /// `trigger.http[0].component.`).
    pub key_prefix: String,
}

impl<'a> ManifestSource<'a> {
    pub fn new(text: &'a str, file: &'a Path, dir: &'a Path) -> Self {
        ManifestSource {
            text,
            file,
            dir,
            pinned: None,
            key_prefix: String::new(),
        }
    }

    /// A source for `text`, a part of this file rewritten, whose errors point at `span` here
    /// and name keys under `key`.
    pub fn part<'b>(&'b self, text: &'b str, span: Range<usize>, key: &str) -> ManifestSource<'b> {
        ManifestSource {
            text,
            file: self.file,
            dir: self.dir,
            pinned: Some(self.location(span)),
            key_prefix: format!("{key}."),
        }
    }

    /// Deserializes the whole file; an error names the key serde was reading and its line.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ManifestError> {
        let deserializer = toml::Deserializer::new(self.text);
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." {
                self.key_prefix.trim_end_matches('.').to_string()
            } else {
                format!("{}{key}", self.key_prefix)
            };
            let inner = e.into_inner();
            let location = inner.span().map(|span| self.location(span));
            ManifestError::new(self.file, location, key, inner.message().trim().to_string())
        })
    }

    pub fn location(&self, span: Range<usize>) -> Location {
        self.pinned
            .unwrap_or_else(|| Location::from_offset(self.text, span.start))
    }

    pub fn error_at(
        &self,
        span: impl Into<Option<Range<usize>>>,
        key: &str,
        message: impl Into<String>,
    ) -> ManifestError {
        let location = span.into().map(|s| self.location(s)).or(self.pinned);
        ManifestError::new(self.file, location, key.trim_end_matches('.'), message)
    }
}
