//! Bearer-token access control for the chunk routes.
//!
//! The token file holds one token per line, `rw TOKEN` (read-write) or `ro TOKEN` (read-only);
//! blank lines and lines starting with `#` are ignored. Reads (`GET`, `HEAD`, and the
//! `POST /v1/chunks/missing` query) need any valid token, uploads (`PUT`) need an `rw` one.
//! Only SHA-256 digests of the tokens are kept, and they are compared in constant time.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::Error;
use super::rejection::Rejection;

/// What a token allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads only (`ro`).
    ReadOnly,
    /// Reads and uploads (`rw`).
    ReadWrite,
}

/// The tokens of a token file.
#[derive(Clone, Default)]
pub struct Tokens {
    digests: Vec<([u8; 32], Access)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("count", &self.digests.len())
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Reads a token file. Warns when every user may read it.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = fs_err::read_to_string(path).map_err(Error::TokenFile)?;
        // Group access is how a root-owned file reaches the service user (0640 root:group,
        // as the systemd unit installs it); access for every user is the mistake.
        if let Ok(meta) = fs_err::metadata(path)
            && meta.permissions().mode() & 0o007 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "token file is readable by every user; run `chmod o-rwx` on it"
            );
        }
        Self::parse(&text, path)
    }

    /// Parses token-file text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let bad = |line: usize, reason: &'static str| Error::TokenLine {
            path: path.to_owned(),
            line,
            reason,
        };
        let mut tokens = Self::default();
        for (index, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let access = match fields.as_slice() {
                [] => continue,
                [first, ..] if first.starts_with('#') => continue,
                ["rw", _] => Access::ReadWrite,
                ["ro", _] => Access::ReadOnly,
                [_, _] => return Err(bad(index + 1, "the access must be `rw` or `ro`")),
                _ => return Err(bad(index + 1, "expected `rw TOKEN` or `ro TOKEN`")),
            };
            let digest = digest(fields[1]);
            if tokens.digests.iter().any(|(d, _)| *d == digest) {
                return Err(bad(index + 1, "this token is listed twice"));
            }
            tokens.digests.push((digest, access));
        }
        if tokens.digests.is_empty() {
            return Err(Error::NoTokens(path.to_owned()));
        }
        Ok(tokens)
    }

    /// What `token` allows, if it is one of ours.
    #[must_use]
    pub fn access(&self, token: &str) -> Option<Access> {
        let presented = digest(token);
        // Check every entry without stopping early, so timing does not reveal which matched.
        self.digests.iter().fold(None, |found, (known, access)| {
            let same = known
                .iter()
                .zip(presented)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
            if same { Some(*access) } else { found }
        })
    }

    /// How many tokens there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// True when there are none (never the case for a loaded file).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }
}

/// Who may use the chunk routes.
#[derive(Clone, Debug)]
pub enum Auth {
    /// Anyone, with or without a token (only allowed on loopback or with `--insecure-open`).
    Open,
    /// Holders of these tokens.
    Tokens(Tokens),
}

impl Auth {
    /// Loads `token_file`, or serves openly when there is none.
    pub fn from_file(token_file: Option<&Path>) -> Result<Self, Error> {
        token_file.map_or(Ok(Self::Open), |path| Tokens::load(path).map(Self::Tokens))
    }
}

/// Middleware: rejects a request whose bearer token does not allow its method with 401 (no or
/// unknown token) or 403 (read-only token uploading).
pub async fn require_token(
    State(auth): State<Arc<Auth>>,
    request: Request,
    next: Next,
) -> Result<Response, Rejection> {
    let Auth::Tokens(tokens) = auth.as_ref() else {
        return Ok(next.run(request).await);
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer)
        .ok_or(Rejection::MissingToken)?;
    let access = tokens.access(presented).ok_or(Rejection::InvalidToken)?;
    if access == Access::ReadOnly && request.method() == Method::PUT {
        return Err(Rejection::ReadOnly);
    }
    Ok(next.run(request).await)
}

/// The token of an `Authorization: Bearer TOKEN` value (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Tokens, Error> {
        Tokens::parse(text, Path::new("tokens"))
    }

    #[test]
    fn comments_blank_lines_and_both_kinds() {
        let tokens =
            parse("# team tokens\n\nrw writer-token\n  ro reader-token  \n").expect("valid");
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens.access("writer-token"), Some(Access::ReadWrite));
        assert_eq!(tokens.access("reader-token"), Some(Access::ReadOnly));
        assert_eq!(tokens.access("reader"), None);
        assert_eq!(tokens.access(""), None);
    }

    #[test]
    fn malformed_lines_name_their_number() {
        for (text, line) in [
            ("rw a\nadmin b\n", 2),
            ("ro\n", 1),
            ("rw a b\n", 1),
            ("ro x\nrw x\n", 2),
        ] {
            match parse(text) {
                Err(Error::TokenLine { line: got, .. }) => assert_eq!(got, line, "{text:?}"),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn a_file_without_tokens_is_refused() {
        assert!(matches!(parse("# nothing yet\n"), Err(Error::NoTokens(_))));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
