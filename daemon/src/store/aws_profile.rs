//! The shared AWS configuration files (`~/.aws/credentials` and `~/.aws/config`), read the way
//! the AWS CLI and SDKs read them, so an `s3://` remote works with the profile a user already
//! has.
//!
//! [`resolve`] turns the caller's `AWS_*` variables into the complete set an S3 client needs:
//! the variables win, and the selected profile (`AWS_PROFILE`, else `default`) fills in what
//! they leave out. Credentials are taken as a whole from one place, never a key from the
//! environment with a secret from a file. Supported profile keys: `aws_access_key_id`,
//! `aws_secret_access_key`, `aws_session_token`, `region` and `endpoint_url`. Profiles that
//! only name another way to get credentials (`role_arn`, `sso_*`, `credential_process`) are
//! refused with advice rather than ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fs_err as fs;

/// Keys of a profile, as the files spell them, and the variables they stand for.
const CREDENTIAL_KEYS: [(&str, &str); 3] = [
    ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
    ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
    ("aws_session_token", "AWS_SESSION_TOKEN"),
];

/// Profile keys that get credentials some other way, which nshard does not implement.
const INDIRECT_KEYS: [&str; 5] = [
    "role_arn",
    "credential_process",
    "sso_session",
    "sso_start_url",
    "web_identity_token_file",
];

/// Why the AWS configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `AWS_PROFILE` names a profile neither file defines.
    #[error(
        "AWS profile `{profile}` is not defined in {credentials} or {config}: check AWS_PROFILE"
    )]
    NoSuchProfile {
        /// The profile asked for.
        profile: String,
        /// The credentials file looked in.
        credentials: String,
        /// The config file looked in.
        config: String,
    },
    /// The profile only says where to get credentials, in a way nshard does not support.
    #[error(
        "AWS profile `{profile}` gets its credentials through `{key}`, which nshard does not \
         support: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (for example from \
         `aws configure export-credentials --profile {profile} --format env`)"
    )]
    Indirect {
        /// The profile.
        profile: String,
        /// The key it uses.
        key: String,
    },
    /// A configuration file exists but cannot be read.
    #[error("cannot read the AWS configuration file {path}: {source}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The caller's `AWS_*` variables completed from the selected profile of the shared files.
/// `env` may also hold `HOME`, where `~/.aws/` is looked for unless `AWS_SHARED_CREDENTIALS_FILE`
/// and `AWS_CONFIG_FILE` say otherwise; with neither, only the variables count.
///
/// # Errors
/// When `AWS_PROFILE` names a profile that is nowhere to be found, when the profile relies on a
/// credential source that is not supported, or when a file exists but cannot be read.
#[expect(
    clippy::implicit_hasher,
    reason = "environments are plain maps everywhere in the crate"
)]
pub fn resolve(env: &HashMap<String, String>) -> Result<HashMap<String, String>, Error> {
    let mut out = env.clone();
    let explicit = env
        .get("AWS_PROFILE")
        .or_else(|| env.get("AWS_DEFAULT_PROFILE"));
    let name = explicit.map_or("default", String::as_str);
    let credentials_path = file_path(env, "AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config_path = file_path(env, "AWS_CONFIG_FILE", "config");
    let credentials = read_section(credentials_path.as_deref(), name, false)?;
    let config = read_section(config_path.as_deref(), name, true)?;
    if credentials.is_none() && config.is_none() {
        return match explicit {
            Some(profile) => Err(Error::NoSuchProfile {
                profile: profile.clone(),
                credentials: shown(credentials_path.as_deref()),
                config: shown(config_path.as_deref()),
            }),
            None => Ok(out),
        };
    }
    // The credentials file wins over the config file for the same key.
    let mut profile = config.unwrap_or_default();
    profile.extend(credentials.unwrap_or_default());

    let has_env_credentials =
        env.contains_key("AWS_ACCESS_KEY_ID") && env.contains_key("AWS_SECRET_ACCESS_KEY");
    if !has_env_credentials {
        if profile.contains_key("aws_access_key_id") {
            for (key, var) in CREDENTIAL_KEYS {
                let _ = match profile.get(key) {
                    Some(value) => out.insert(var.to_owned(), value.clone()),
                    None => out.remove(var),
                };
            }
        } else if let Some(key) = INDIRECT_KEYS.iter().find(|k| profile.contains_key(**k)) {
            return Err(Error::Indirect {
                profile: name.to_owned(),
                key: (*key).to_owned(),
            });
        }
    }
    if let Some(region) = profile.get("region")
        && !env.contains_key("AWS_REGION")
        && !env.contains_key("AWS_DEFAULT_REGION")
    {
        let _ = out.insert("AWS_REGION".to_owned(), region.clone());
    }
    let ignore_endpoints = env
        .get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if let Some(endpoint) = profile.get("endpoint_url")
        && !env.contains_key("AWS_ENDPOINT_URL_S3")
        && !env.contains_key("AWS_ENDPOINT_URL")
        && !ignore_endpoints
    {
        let _ = out.insert("AWS_ENDPOINT_URL".to_owned(), endpoint.clone());
    }
    Ok(out)
}

/// The file named by `var`, else `$HOME/.aws/<name>`; `None` when neither is known.
fn file_path(env: &HashMap<String, String>, var: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = env.get(var).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    env.get("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| Path::new(home).join(".aws").join(name))
}

fn shown(path: Option<&Path>) -> String {
    path.map_or_else(
        || "~/.aws (HOME is not set)".to_owned(),
        |p| p.display().to_string(),
    )
}

/// The keys of profile `name` in the file at `path`; `None` when the file or the profile is
/// absent. The config file names profiles `[profile NAME]` (and the default `[default]`); the
/// credentials file just `[NAME]`.
fn read_section(
    path: Option<&Path>,
    name: &str,
    config_file: bool,
) -> Result<Option<HashMap<String, String>>, Error> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Unreadable {
                path: path.display().to_string(),
                source,
            });
        }
    };
    Ok(parse(&text)
        .into_iter()
        .filter(|(section, _)| section_names(section, name, config_file))
        .map(|(_, keys)| keys)
        .reduce(|mut all, keys| {
            all.extend(keys);
            all
        }))
}

/// Whether section header `section` (without brackets) is profile `name`.
fn section_names(section: &str, name: &str, config_file: bool) -> bool {
    if !config_file {
        return section == name;
    }
    match section.strip_prefix("profile ") {
        Some(profile) => profile.trim() == name,
        None => section == "default" && name == "default",
    }
}

/// Sections of an AWS INI file, in order: header and its top-level `key = value` pairs.
/// Comment lines (`#`, `;`) are skipped, and so are indented lines, which hold the nested
/// settings of a key such as `s3 =`; keys are case-insensitive.
fn parse(text: &str) -> Vec<(String, HashMap<String, String>)> {
    let mut sections: Vec<(String, HashMap<String, String>)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push((header.trim().to_owned(), HashMap::new()));
        } else if let (Some((key, value)), Some((_, keys))) =
            (line.split_once('='), sections.last_mut())
        {
            let _ = keys.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREDENTIALS: &str = "\
# written by aws configure
[default]
aws_access_key_id = DEFAULTKEY
aws_secret_access_key = defaultsecret

[team]
aws_access_key_id=TEAMKEY
aws_secret_access_key=teamsecret
aws_session_token = teamtoken
";

    const CONFIG: &str = "\
[default]
region = eu-west-1

[profile team]
region = us-west-2
endpoint_url = http://minio.lan:9000
s3 =
  addressing_style = path

[profile assumed]
role_arn = arn:aws:iam::123456789012:role/models
source_profile = default
";

    /// A home directory holding `~/.aws/credentials` and `~/.aws/config`.
    fn home() -> tempfile::TempDir {
        let home = tempfile::tempdir().expect("tempdir");
        let aws = home.path().join(".aws");
        fs::create_dir(&aws).expect("mkdir");
        fs::write(aws.join("credentials"), CREDENTIALS).expect("write");
        fs::write(aws.join("config"), CONFIG).expect("write");
        home
    }

    fn env(home: &Path, vars: &[(&str, &str)]) -> HashMap<String, String> {
        let mut env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let _ = env.insert("HOME".to_owned(), home.display().to_string());
        env
    }

    #[test]
    fn the_default_profile_fills_in_credentials_and_region() {
        let home = home();
        let out = resolve(&env(home.path(), &[])).expect("resolve");
        assert_eq!(out["AWS_ACCESS_KEY_ID"], "DEFAULTKEY");
        assert_eq!(out["AWS_SECRET_ACCESS_KEY"], "defaultsecret");
        assert_eq!(out["AWS_REGION"], "eu-west-1");
        assert!(!out.contains_key("AWS_ENDPOINT_URL"));
    }

    #[test]
    fn a_named_profile_brings_its_token_and_endpoint_but_not_nested_settings() {
        let home = home();
        let out = resolve(&env(home.path(), &[("AWS_PROFILE", "team")])).expect("resolve");
        assert_eq!(out["AWS_ACCESS_KEY_ID"], "TEAMKEY");
        assert_eq!(out["AWS_SESSION_TOKEN"], "teamtoken");
        assert_eq!(out["AWS_REGION"], "us-west-2");
        assert_eq!(out["AWS_ENDPOINT_URL"], "http://minio.lan:9000");
        assert!(!out.keys().any(|k| k.contains("ADDRESSING")));
    }

    #[test]
    fn variables_win_and_credentials_never_mix_sources() {
        let home = home();
        let vars = [
            ("AWS_PROFILE", "team"),
            ("AWS_ACCESS_KEY_ID", "ENVKEY"),
            ("AWS_SECRET_ACCESS_KEY", "envsecret"),
            ("AWS_DEFAULT_REGION", "ap-south-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
        ];
        let out = resolve(&env(home.path(), &vars)).expect("resolve");
        assert_eq!(out["AWS_ACCESS_KEY_ID"], "ENVKEY");
        assert!(
            !out.contains_key("AWS_SESSION_TOKEN"),
            "the profile's token belongs to the profile's key"
        );
        assert!(!out.contains_key("AWS_REGION"));
        assert_eq!(out["AWS_DEFAULT_REGION"], "ap-south-1");
        assert_eq!(out["AWS_ENDPOINT_URL"], "http://127.0.0.1:9000");

        // A lone key in the environment is not a credential: the profile's pair replaces it.
        let out = resolve(&env(home.path(), &[("AWS_ACCESS_KEY_ID", "STRAY")])).expect("resolve");
        assert_eq!(out["AWS_ACCESS_KEY_ID"], "DEFAULTKEY");
    }

    #[test]
    fn explicit_file_variables_replace_the_home_directory() {
        let home = home();
        let elsewhere = tempfile::tempdir().expect("tempdir");
        let file = elsewhere.path().join("creds");
        fs::write(
            &file,
            "[default]\naws_access_key_id = OTHER\naws_secret_access_key = x\n",
        )
        .expect("write");
        let vars = [
            ("AWS_SHARED_CREDENTIALS_FILE", file.to_str().expect("utf-8")),
            ("AWS_CONFIG_FILE", "/nonexistent/config"),
        ];
        let out = resolve(&env(home.path(), &vars)).expect("resolve");
        assert_eq!(out["AWS_ACCESS_KEY_ID"], "OTHER");
        assert!(
            !out.contains_key("AWS_REGION"),
            "the config file was replaced too"
        );
    }

    #[test]
    fn missing_files_and_profiles() {
        let empty = tempfile::tempdir().expect("tempdir");
        let vars = env(empty.path(), &[("AWS_REGION", "us-east-1")]);
        assert_eq!(
            resolve(&vars).expect("no files, no profile asked for"),
            vars
        );

        let home = home();
        let err = resolve(&env(home.path(), &[("AWS_PROFILE", "nope")])).expect_err("unknown");
        let message = err.to_string();
        assert!(
            message.contains("`nope`") && message.contains("credentials"),
            "{message}"
        );
    }

    #[test]
    fn role_profiles_are_refused_with_advice() {
        let home = home();
        let err = resolve(&env(home.path(), &[("AWS_PROFILE", "assumed")])).expect_err("role");
        assert!(err.to_string().contains("role_arn"), "{err}");
        assert!(err.to_string().contains("export-credentials"), "{err}");
        // With credentials in the environment the profile's other settings still apply.
        let vars = [
            ("AWS_PROFILE", "assumed"),
            ("AWS_ACCESS_KEY_ID", "K"),
            ("AWS_SECRET_ACCESS_KEY", "S"),
        ];
        assert!(resolve(&env(home.path(), &vars)).is_ok());
    }
}
