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
}

impl ManifestSource<'_> {
    /// Deserializes the whole file; an error names the key serde was reading and its line.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ManifestError> {
        let deserializer = toml::Deserializer::new(self.text);
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            let inner = e.into_inner();
            let location = inner
                .span()
                .map(|span| Location::from_offset(self.text, span.start));
            ManifestError::new(self.file, location, key, inner.message().trim().to_string())
        })
    }

    pub fn location(&self, span: Range<usize>) -> Location {
        Location::from_offset(self.text, span.start)
    }

    pub fn error_at(
        &self,
        span: impl Into<Option<Range<usize>>>,
        key: &str,
        message: impl Into<String>,
    ) -> ManifestError {
        let location = span.into().map(|s| self.location(s));
        ManifestError::new(self.file, location, key.trim_end_matches('.'), message)
    }
}
