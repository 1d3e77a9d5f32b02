//! Git hooks, installed the way Git LFS does it: `pre-push` uploads the chunks that the pushed
//! commits' manifests need (and fails the push when it cannot, so nobody publishes a manifest
//! whose data is nowhere); `post-checkout` and `post-merge` pull and check out the files whose
//! manifests changed (off with `git config neuroshard.pullOnCheckout false`).
//!
//! A hook that already exists is kept: it is renamed to `<hook>.local` and our hook runs it
//! first, with the same arguments and input, and stops if it fails.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use fs_err as fs;

use crate::error::Result;
use crate::git::Git;
use crate::repo::Repo;

/// Marks hooks we wrote, so re-running `git-init --hooks` updates rather than chains them.
const MARKER: &str = "# neuroshard hook";

/// The hooks we install.
const HOOKS: [&str; 3] = ["pre-push", "post-checkout", "post-merge"];

/// Installs the hooks; returns their paths.
pub fn install(repo: &Repo) -> Result<Vec<PathBuf>> {
    let git = Git::open(&repo.root)?;
    let dir = git.hooks_dir()?;
    fs::create_dir_all(&dir)?;
    let mut installed = Vec::new();
    for hook in HOOKS {
        let path = dir.join(hook);
        if path.exists() {
            let existing = fs::read_to_string(&path).unwrap_or_default();
            if !existing.contains(MARKER) {
                let local = dir.join(format!("{hook}.local"));
                if local.exists() {
                    // Both exist and ours is missing: keep the user's newest hook as well.
                    fs::rename(&path, dir.join(format!("{hook}.local.previous")))?;
                } else {
                    fs::rename(&path, &local)?;
                }
            }
        }
        crate::fsutil::write_atomic(&path, script(hook).as_bytes())?;
        fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        installed.push(path);
    }
    Ok(installed)
}

fn script(hook: &str) -> String {
    let body = match hook {
        "pre-push" => {
            r#"input=$(cat)
if [ -x "$0.local" ]; then
  printf '%s\n' "$input" | "$0.local" "$@" || exit $?
fi
command -v nshard >/dev/null 2>&1 || {
  echo "nshard is not on PATH: cannot upload the chunks this push needs (see .git/hooks/pre-push)" >&2
  exit 1
}
printf '%s\n' "$input" | nshard hook pre-push "$@""#
        }
        _ => {
            r#"if [ -x "$0.local" ]; then
  "$0.local" "$@" || exit $?
fi
[ "$(git config --bool neuroshard.pullOnCheckout)" = "false" ] && exit 0
command -v nshard >/dev/null 2>&1 || exit 0
nshard hook HOOK "$@""#
        }
    };
    format!(
        "#!/bin/sh\n{MARKER}: installed by `nshard git-init --hooks`\n{}\n",
        body.replace("HOOK", hook)
    )
}
