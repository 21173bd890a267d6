//! The admin API's bearer token: made at the host's first start, kept owner-only in the
//! state directory, compared in constant time.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub const TOKEN_FILE: &str = "admin-token";

pub struct AdminToken(String);

impl AdminToken {
    /// The token in `state_dir`, made now if there is none; `true` when it was just made.
    pub fn load_or_create(state_dir: &Path) -> anyhow::Result<(Self, bool)> {
        let file = state_dir.join(TOKEN_FILE);
        match std::fs::read_to_string(&file) {
            Ok(text) if !text.trim().is_empty() => {
                return Ok((AdminToken(text.trim().into()), false))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("reading {}: {e}", file.display()),
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let token = format!("kite_{}", crate::bundle::hex(&bytes));
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&file)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", file.display()))?;
        out.write_all(token.as_bytes())?;
        out.sync_all()?;
        Ok((AdminToken(token), true))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether an `Authorization` header value carries this token.
    pub fn accepts(&self, header: Option<&[u8]>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
            return false;
        };
        let expected = self.0.as_bytes();
        given.len() == expected.len()
            && given
                .iter()
                .zip(expected)
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_made_once_owner_only_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (token, made) = AdminToken::load_or_create(dir.path()).unwrap();
        assert!(made);
        let (again, made) = AdminToken::load_or_create(dir.path()).unwrap();
        assert!(!made);
        assert_eq!(token.as_str(), again.as_str());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let header = format!("Bearer {}", token.as_str());
        assert!(token.accepts(Some(header.as_bytes())));
        assert!(!token.accepts(Some(b"Bearer kite_wrong")));
        assert!(!token.accepts(Some(token.as_str().as_bytes())));
        assert!(!token.accepts(None));
    }
}
