//! Setting a repository up: `nshard init`, `nshard git-init`, `nshard track`, and the error a
//! command gives outside any repository. Each test boots its own daemon in a `Sandbox`.

use crate::sandbox::{Sandbox, each, random_bytes};

#[test]
fn init_creates_the_shard_directory() {
    let s = Sandbox::new();
    let out = s.ok(&["init"]);
    assert!(
        s.path(".shard").is_dir(),
        "no .shard/ after init; stdout:\n{out}"
    );
    assert!(s.path(".shard/config.toml").is_file());
    assert!(
        out.contains(".shard"),
        "init should say where it created the repository:\n{out}"
    );
}

#[test]
fn git_add_never_picks_up_the_store_even_without_git_init() {
    let s = Sandbox::with_repo();
    s.write("notes.txt", b"hello");
    s.write("models/a.bin", &random_bytes(2, 100_000));
    let _ = s.ok(&["commit", "-m", "first"]);
    let _ = s.git(&["add", "-A"]);
    let staged = s.git(&["diff", "--cached", "--name-only"]);
    assert!(
        !staged.lines().any(|f| f.starts_with(".shard/")),
        "the store was staged:\n{staged}"
    );
    assert!(
        staged.lines().any(|f| f == "models/a.bin.shard.json"),
        "{staged}"
    );
}

/// Runs `nshard args` in `cwd`, expecting success, and returns what it printed to stderr.
fn stderr_of(s: &Sandbox, cwd: &std::path::Path, args: &[&str]) -> String {
    let out = s
        .nshard_in(cwd)
        .args(args)
        .assert()
        .success()
        .get_output()
        .clone();
    String::from_utf8(out.stderr).unwrap()
}

/// Runs `nshard track args` in `cwd` and returns what it printed to stderr.
fn track_stderr(s: &Sandbox, cwd: &std::path::Path, args: &[&str]) -> String {
    stderr_of(s, cwd, &[&["track"], args].concat())
}

#[test]
fn track_warns_while_git_would_store_the_tracked_files_itself() {
    let s = Sandbox::new();
    let _ = s.ok(&["init"]);
    s.write("models/a.bin", &random_bytes(3, 1000));

    let warned = track_stderr(&s, s.root(), &["models/a.bin"]);

    assert!(
        warned.contains("models/a.bin") && warned.contains("nshard git-init"),
        "{warned}"
    );
    // The commit says it again, and reports it for scripts.
    let committed = stderr_of(&s, s.root(), &["commit", "-m", "v1"]);
    assert!(
        committed.contains("hint: Git does not ignore models/a.bin,"),
        "{committed}"
    );
    // So does every status until `nshard git-init`.
    let status = stderr_of(&s, s.root(), &["status"]);
    assert!(
        status.contains("hint: Git does not ignore models/a.bin,"),
        "{status}"
    );
    let json = s.json(&["status", "--json"]);
    assert_eq!(
        json["git_would_add"],
        serde_json::json!(["models/a.bin"]),
        "{json:#}"
    );
    let _ = s.ok(&["git-init"]);
    let json = s.json(&["status", "--json"]);
    assert_eq!(json["git_would_add"], serde_json::json!([]), "{json:#}");
    s.write("models/b.bin", &random_bytes(4, 1000));
    let json = s.json(&["commit", "-m", "v2", "--json"]);
    assert_eq!(json["git_would_add"], serde_json::json!([]), "{json:#}");
    let quiet = track_stderr(&s, s.root(), &["models/b.bin"]);
    assert!(!quiet.contains("hint"), "{quiet}");
    // A file Git already took is named even though .gitignore now covers it.
    let _ = s.git(&["add", "--force", "models/b.bin"]);
    let indexed = track_stderr(&s, s.root(), &["models"]);
    assert!(
        indexed.contains("models/b.bin") && !indexed.contains("models/a.bin"),
        "{indexed}"
    );
}

#[test]
fn the_git_hint_names_files_of_a_repository_below_the_git_root() {
    let s = Sandbox::new();
    let nested = s.path("project");
    std::fs::create_dir(&nested).unwrap();
    let _ = s.ok_in(&nested, &["init"]);
    s.write("project/w.bin", &random_bytes(5, 1000));

    let warned = track_stderr(&s, &nested, &["w.bin"]);

    assert!(
        warned.contains("hint: Git does not ignore w.bin,"),
        "{warned}"
    );
}

#[test]
fn init_twice_is_harmless() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(1, 300_000));
    let _ = s.ok(&["commit", "-m", "first"]);
    let config = s.read(".shard/config.toml");
    let chunks = s.stored_chunks();

    let _ = s.ok(&["init"]);

    assert_eq!(
        s.read(".shard/config.toml"),
        config,
        "a second init must not rewrite the config"
    );
    assert_eq!(s.stored_chunks(), chunks);
    let status = s.json(&["status", "--json"]);
    assert_eq!(status["files"][0]["state"], "clean", "{status:#}");
}

#[test]
fn git_init_ignores_the_store_and_tracked_files_but_never_manifests() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(2, 100_000));
    s.write("notes.txt", b"not tracked\n");
    let _ = s.ok(&["git-init"]);
    let _ = s.ok(&["commit", "-m", "first"]);

    let gitignore = String::from_utf8(s.read(".gitignore")).unwrap();
    assert!(gitignore.lines().any(|l| l == "/.shard/"), "{gitignore}");
    assert!(s.git_ignores(".shard/config.toml"));
    assert!(s.git_ignores("models/a.bin"));
    assert!(
        !s.git_ignores("models/a.bin.shard.json"),
        "a manifest is ignored:\n{gitignore}"
    );
    assert!(!s.git_ignores("notes.txt"));

    let _ = s.git(&["add", "-A"]);
    let staged = s.git(&["diff", "--cached", "--name-only"]);
    assert_eq!(
        staged.lines().collect::<Vec<_>>(),
        [
            ".gitignore",
            ".shardconfig",
            "models/a.bin.shard.json",
            "notes.txt"
        ]
    );
}

#[test]
fn git_init_keeps_the_users_lines_and_never_duplicates_its_block() {
    let s = Sandbox::with_repo();
    s.write(".gitignore", b"target/\n*.log\n");
    let _ = s.ok(&["git-init"]);
    let _ = s.ok(&["git-init"]);
    let _ = s.ok(&["track", "data/*.npy"]);

    let gitignore = String::from_utf8(s.read(".gitignore")).unwrap();
    assert!(gitignore.starts_with("target/\n*.log\n"), "{gitignore}");
    assert_eq!(gitignore.matches("/.shard/").count(), 1, "{gitignore}");
    assert!(
        s.git_ignores("data/x.npy"),
        "a pattern tracked after git-init is ignored too"
    );
    assert!(!s.git_ignores("data/x.npy.shard.json"));
}

#[test]
fn manifests_below_a_tracked_directory_are_not_ignored() {
    let s = Sandbox::new();
    let _ = s.ok(&["init"]);
    s.write("data/top.bin", &random_bytes(3, 10_000));
    s.write("data/sub/deep.bin", &random_bytes(4, 10_000));
    let _ = s.ok(&["track", "data"]);
    let _ = s.ok(&["git-init"]);
    let _ = s.ok(&["commit", "-m", "first"]);

    let gitignore = String::from_utf8(s.read(".gitignore")).unwrap();
    for file in ["data/top.bin", "data/sub/deep.bin"] {
        assert!(s.git_ignores(file), "{file} is not ignored:\n{gitignore}");
        let manifest = format!("{file}.shard.json");
        assert!(
            !s.git_ignores(&manifest),
            "{manifest} is ignored:\n{gitignore}"
        );
    }
}

#[test]
fn tracking_a_pattern_that_matches_nothing_yet_is_fine() {
    let s = Sandbox::new();
    let _ = s.ok(&["init"]);
    let _ = s.ok(&["track", "checkpoints/*.pt"]);
    assert_eq!(
        s.json(&["status", "--json"])["files"],
        serde_json::json!([])
    );

    s.write("checkpoints/epoch1.pt", &random_bytes(5, 1000));
    let status = s.json(&["status", "--json"]);
    assert_eq!(
        status["files"][0]["path"], "checkpoints/epoch1.pt",
        "{status:#}"
    );
    assert_eq!(status["files"][0]["state"], "new");
}

#[test]
fn tracking_a_missing_plain_path_is_an_error() {
    let s = Sandbox::new();
    let _ = s.ok(&["init"]);
    let config = s.read(".shard/config.toml");
    let message = s.fails(&["track", "models/missing.bin"]);
    assert!(message.contains("models/missing.bin"), "{message}");
    assert_eq!(
        s.read(".shard/config.toml"),
        config,
        "a failed track changed the config"
    );
}

#[test]
fn commands_outside_any_repository_say_so() {
    let s = Sandbox::new();
    let outside = s.base().join("outside");
    std::fs::create_dir(&outside).unwrap();
    for args in [
        &["status"][..],
        &["commit", "-m", "x"],
        &["track", "*.bin"],
        &["checkout"],
    ] {
        let out = s.nshard_in(&outside).args(args).output().unwrap();
        let message = crate::sandbox::expect_failure(&out, &args.join(" "));
        assert!(
            message.contains("not inside a NeuroShard repository"),
            "{message}"
        );
    }
    assert!(!outside.join(".shard").exists());
}

#[test]
fn files_named_like_patterns_are_tracked_and_ignored_exactly() {
    let s = Sandbox::new();
    let _ = s.ok(&["init"]);
    let _ = s.ok(&["git-init"]);
    for name in ["w[1].bin", "trail.bin ", "star*.bin"] {
        s.write(name, &random_bytes(3, 1000));
        let _ = s.ok(&["track", name]);
    }
    // Lookalikes the escaped patterns must not catch.
    s.write("w1.bin", b"code");
    s.write("trail.bin", b"code");
    s.write("starry.bin", b"code");
    let _ = s.ok(&["commit", "-m", "first"]);

    let status = s.json(&["status", "--json"]);
    let tracked = each(&status["files"], "path");
    assert_eq!(
        tracked,
        ["star*.bin", "trail.bin ", "w[1].bin"],
        "{status:#}"
    );
    for name in tracked {
        assert!(s.git_ignores(name), "Git does not ignore {name:?}");
    }
    for name in ["w1.bin", "trail.bin", "starry.bin"] {
        assert!(!s.git_ignores(name), "Git ignores the lookalike {name:?}");
    }
    // And they come back by name, alone or with everything.
    let data = s.read("w[1].bin");
    std::fs::remove_file(s.path("w[1].bin")).unwrap();
    let _ = s.ok(&["checkout", "w[1].bin.shard.json"]);
    assert!(s.read("w[1].bin") == data);
    std::fs::remove_file(s.path("w[1].bin")).unwrap();
    let _ = s.ok(&["checkout"]);
    assert!(s.read("w[1].bin") == data);
}

#[test]
fn a_line_break_in_a_file_name_cannot_add_a_line_to_gitignore() {
    let s = Sandbox::new();
    let _ = s.ok(&["init"]);
    let _ = s.ok(&["git-init"]);
    s.write("d/a\n*", b"weights");
    s.write("main.py", b"code");
    let _ = s.ok(&["track", "d"]);

    let gitignore = String::from_utf8(s.read(".gitignore")).unwrap();
    assert!(!gitignore.lines().any(|l| l.trim() == "*"), "{gitignore}");
    assert!(!s.git_ignores("main.py"), "{gitignore}");
    assert!(s.git_ignores("d/a\n*"), "{gitignore}");
}

#[test]
fn what_can_never_be_tracked_is_refused_with_the_reason() {
    let s = Sandbox::new();
    let _ = s.ok(&["init"]);
    s.write("a.bin", b"weights");
    s.write("a.bin.shard.json", b"{}");
    s.write("back\\slash.bin", b"weights");
    std::os::unix::fs::symlink("a.bin", s.path("link.bin")).unwrap();
    std::fs::create_dir_all(s.path(".git")).unwrap();
    let config = s.read(".shard/config.toml");
    for (arg, reason) in [
        (".git", "Git's or NeuroShard's own data"),
        (".shard", "Git's or NeuroShard's own data"),
        ("", "inside the repository"),
        ("a.bin.shard.json", "manifests are committed"),
        ("link.bin", "symbolic link"),
        ("back\\slash.bin", "`/` only"),
    ] {
        let message = s.fails(&["track", arg]);
        assert!(message.contains("cannot be tracked"), "{arg:?}: {message}");
        assert!(message.contains(reason), "{arg:?}: {message}");
    }
    assert_eq!(s.read(".shard/config.toml"), config);
}

#[test]
fn untrack_says_what_a_pattern_or_a_manifest_still_tracks() {
    let s = Sandbox::new();
    let _ = s.ok(&["init"]);
    s.write("models/a.bin", b"weights");
    let _ = s.ok(&["track", "models/*.bin"]);
    let message = s.fails(&["untrack", "models/a.bin"]);
    assert!(message.contains("`models/*.bin`"), "{message}");

    let _ = s.ok(&["commit", "-m", "first"]);
    let said = s.ok(&["untrack", "models/*.bin"]);
    assert!(said.contains("models/a.bin keeps its manifest"), "{said}");
    assert!(said.contains("git rm models/a.bin.shard.json"), "{said}");
}

#[test]
fn a_pattern_never_hides_untracked_directories_or_gits_own_files() {
    let s = Sandbox::new();
    let _ = s.ok(&["init"]);
    let _ = s.ok(&["git-init"]);
    s.write("m/w.bin", b"weights");
    s.write("m/sub/train.py", b"print(1)");
    s.write(".shardconfig", b"");
    s.write("m/.m.bin.nshard-Ab12Cd.tmp", b"a checkout's leftover");
    let _ = s.ok(&["track", "m/*"]);
    let _ = s.ok(&["track", "*"]);

    let status = s.json(&["status", "--json"]);
    assert_eq!(each(&status["files"], "path"), ["m/w.bin"], "{status:#}");
    assert!(s.git_ignores("m/w.bin"));
    for kept in ["m/sub/train.py", ".gitignore", ".shardconfig"] {
        assert!(!s.git_ignores(kept), "Git ignores {kept}");
    }
    let message = s.fails(&["track", ".gitignore"]);
    assert!(message.contains("versioned by Git as it is"), "{message}");
}

#[test]
fn commit_keeps_the_managed_block_current_for_patterns_added_by_hand() {
    let s = Sandbox::new();
    let _ = s.ok(&["init"]);
    let _ = s.ok(&["git-init"]);
    let config = s.path(".shard/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let edited = if text.contains("patterns = []") {
        text.replace("patterns = []", "patterns = [\"local/*.pt\"]")
    } else {
        format!("{text}\n[track]\npatterns = [\"local/*.pt\"]\n")
    };
    std::fs::write(&config, edited).unwrap();
    s.write("local/x.pt", &random_bytes(4, 5000));
    let _ = s.ok(&["commit", "-m", "by hand"]);
    assert!(
        s.git_ignores("local/x.pt"),
        "the committed file would go into Git"
    );
}
