//! The seed's collaboration story through a real `shard-server` over a local directory: machine A
//! commits and pushes, `git push`es the manifest; machine B (a fresh clone of the same Git
//! repository) pulls and gets a byte-identical file. Also: tokens, a corrupted chunk on the
//! server, a server killed mid-push, and a server that is not there.

use std::time::{Duration, Instant};

use crate::remote_fixtures::{
    FILE, MANIFEST, Server, assert_same, chunk_ids, chunks_of, count, dead_port, machine_a,
    machine_b, objects_in, ok_with, publish, run, shard_server_bin,
};
use crate::sandbox::{MIB, expect_failure, random_bytes};

/// Between two looks at the server's storage while a push runs.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// How long a push may take to deliver its first chunk (a safety net).
const FIRST_CHUNK_TIMEOUT: Duration = Duration::from_secs(120);

/// At the default 2 MiB average chunk size, a 1 MiB edit touches the chunk it lands in (or the
/// two it straddles) and perhaps a neighbour whose boundary moved.
const FEW_CHUNKS: u64 = 3;

#[test]
fn the_seed_story_through_shard_server_moves_only_what_changed() {
    let mut data = random_bytes(300, 64 * MIB);
    let a = machine_a();
    publish(&a, FILE, &data, "v1");
    let storage = a.base().join("server-data");
    let server = Server::on_dir(&storage, &[]);
    let total = chunks_of(&a, FILE);

    // The seed forms, verbatim.
    let said = a.ok(&["push", "--remote", &server.url]);
    assert!(said.contains("pushed"), "{said}");
    assert_eq!(objects_in(&storage).len() as u64, total);
    let again = a.json(&["push", "--remote", &server.url, "--json"]);
    assert_eq!(count(&again, "chunks_transferred"), 0, "{again:#}");
    assert_eq!(count(&again, "bytes_transferred"), 0, "{again:#}");
    assert_eq!(count(&again, "chunks_present"), total, "{again:#}");

    let b = machine_b(&a);
    assert!(!b.path(FILE).exists(), "Git carried the big file");
    let _ = b.ok(&["pull", MANIFEST, "--remote", &server.url]);
    assert_same(&b, FILE, &data);

    // A 1 MiB edit in the middle of the 64 MiB file.
    data[30 * MIB..31 * MIB].copy_from_slice(&random_bytes(301, MIB));
    publish(&a, FILE, &data, "v2");
    let pushed = a.json(&["push", "--remote", &server.url, "--json"]);
    let new_total = chunks_of(&a, FILE);
    let sent = count(&pushed, "chunks_transferred");
    assert!(
        (1..=FEW_CHUNKS).contains(&sent),
        "a 1 MiB edit uploaded {sent} of {new_total} chunks: {pushed:#}"
    );
    assert_eq!(
        count(&pushed, "chunks_present"),
        new_total - sent,
        "{pushed:#}"
    );

    let _ = b.git(&["pull", "--quiet"]);
    let pulled = b.json(&["pull", MANIFEST, "--remote", &server.url, "--json"]);
    let received = count(&pulled, "chunks_transferred");
    assert!(
        (1..=FEW_CHUNKS).contains(&received),
        "a 1 MiB edit downloaded {received} of {new_total} chunks: {pulled:#}"
    );
    assert_same(&b, FILE, &data);
}

#[test]
fn tokens_come_from_each_nshard_invocation_not_the_daemon() {
    let data = random_bytes(310, 3 * MIB);
    let a = machine_a();
    publish(&a, FILE, &data, "v1");
    let storage = a.base().join("server-data");
    let tokens = a.base().join("tokens");
    std::fs::write(
        &tokens,
        "# the team's tokens\nrw writer-secret\nro reader-secret\n",
    )
    .unwrap();
    let server = Server::on_dir(&storage, &["--token-file", tokens.to_str().unwrap()]);
    let token = |t: &str| vec![("NSHARD_TOKEN".to_owned(), t.to_owned())];

    // Restart A's daemon from an invocation holding the read-write token: the daemon's own
    // environment must not authenticate anybody's push.
    let _ = a.ok(&["daemon", "stop"]);
    let _ = ok_with(&a, &["status"], &token("writer-secret"));
    let pid = a.pidfile_pid().expect("the daemon runs");
    if let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) {
        let has_token = environ
            .split(|&b| b == 0)
            .any(|v| v == b"NSHARD_TOKEN=writer-secret");
        assert!(
            has_token,
            "the test's premise: the daemon started with the rw token"
        );
    }
    let push = ["push", "--remote", &server.url];

    let message = expect_failure(&run(&a, &push, &[]), "push without a token");
    assert!(
        message.contains(&server.url),
        "the remote is not named: {message}"
    );
    assert!(
        message.contains("NSHARD_TOKEN"),
        "no hint to set NSHARD_TOKEN: {message}"
    );

    let message = expect_failure(&run(&a, &push, &token("wrong-secret")), "push, wrong token");
    assert!(message.contains("401"), "{message}");

    let message = expect_failure(&run(&a, &push, &token("reader-secret")), "push, ro token");
    assert!(
        message.contains("403"),
        "a read-only token must get 403: {message}"
    );
    assert!(message.contains(&server.url), "{message}");
    assert!(
        objects_in(&storage).is_empty(),
        "a refused push stored chunks"
    );

    let said = ok_with(&a, &push, &token("writer-secret"));
    assert!(said.contains("pushed"), "{said}");
    assert_eq!(objects_in(&storage).len() as u64, chunks_of(&a, FILE));

    let b = machine_b(&a);
    let pull = ["pull", MANIFEST, "--remote", &server.url];
    let message = expect_failure(&run(&b, &pull, &[]), "pull without a token");
    assert!(message.contains("NSHARD_TOKEN"), "{message}");
    assert!(!b.path(FILE).exists());
    let _ = ok_with(&b, &pull, &token("reader-secret"));
    assert_same(&b, FILE, &data);
}

#[test]
fn a_corrupted_chunk_on_the_server_never_reaches_a_working_file() {
    let v1 = random_bytes(320, 6 * MIB);
    let a = machine_a();
    publish(&a, FILE, &v1, "v1");
    let storage = a.base().join("server-data");
    let server = Server::on_dir(&storage, &[]);
    let _ = a.ok(&["push", "--remote", &server.url]);
    let b = machine_b(&a);
    let _ = b.ok(&["pull", MANIFEST, "--remote", &server.url]);
    assert_same(&b, FILE, &v1);

    // v2 rewrites the file's first 2 MiB and adds a second file; one new chunk of x.bin rots
    // on the server after the push.
    let mut v2 = v1.clone();
    v2[..2 * MIB].copy_from_slice(&random_bytes(321, 2 * MIB));
    let other = random_bytes(322, 2 * MIB);
    a.write("models/y.bin", &other);
    publish(&a, FILE, &v2, "v2");
    let _ = a.ok(&["push", "--remote", &server.url]);
    let victim = chunk_ids(&a, FILE)
        .into_iter()
        .find(|id| !b.object(id).exists())
        .expect("v2 has a new chunk");
    let object = storage.join("objects").join(&victim[..2]).join(&victim);
    let mut bytes = std::fs::read(&object).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&object, &bytes).unwrap();

    let _ = b.git(&["pull", "--quiet"]);
    let message = b.fails(&["pull", "--remote", &server.url]);

    assert!(
        message.contains(&victim),
        "the chunk is not named: {message}"
    );
    assert!(message.contains("corrupt"), "{message}");
    assert_same(&b, FILE, &v1);
    assert!(
        !b.path("models/y.bin").exists(),
        "a file was written from a failed pull"
    );
    assert_eq!(
        b.files_under("models"),
        [
            "models/x.bin",
            "models/x.bin.shard.json",
            "models/y.bin.shard.json"
        ],
        "the failed pull left files beside the working files"
    );
    assert!(!b.object(&victim).exists(), "the corrupt chunk was stored");
}

#[test]
fn a_chunk_corrupted_locally_is_refused_by_the_server_and_named_by_the_push() {
    let a = machine_a();
    publish(&a, FILE, &random_bytes(330, 3 * MIB), "v1");
    a.wait_until_idle();
    let victim = chunk_ids(&a, FILE).remove(0);
    let path = a.object(&victim);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x08;
    std::fs::write(&path, &bytes).unwrap();
    let storage = a.base().join("server-data");
    let server = Server::on_dir(&storage, &[]);

    let message = a.fails(&["push", "--remote", &server.url]);

    assert!(
        message.contains(&victim),
        "the chunk is not named: {message}"
    );
    assert!(message.contains("corrupt"), "{message}");
    assert!(
        !storage
            .join("objects")
            .join(&victim[..2])
            .join(&victim)
            .exists(),
        "the server stored a corrupt chunk"
    );
}

#[test]
fn a_push_cut_by_a_dying_server_finishes_on_a_rerun() {
    let data = random_bytes(330, 64 * MIB);
    let a = machine_a();
    publish(&a, FILE, &data, "v1");
    let storage = a.base().join("server-data");
    let mut server = Server::on_dir(&storage, &[]);
    let total = chunks_of(&a, FILE);
    assert!(
        total >= 8,
        "too few chunks ({total}) to cut a push in the middle"
    );

    let (first_push, on_server_at_kill) = std::thread::scope(|scope| {
        let (a, url) = (&a, server.url.clone());
        let push = scope.spawn(move || run(a, &["push", "--remote", &url, "--jobs", "1"], &[]));
        let deadline = Instant::now() + FIRST_CHUNK_TIMEOUT;
        while objects_in(&storage).is_empty() && !push.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the push never delivered a chunk"
            );
            std::thread::sleep(POLL_INTERVAL);
        }
        server.kill();
        let stored = objects_in(&storage).len() as u64;
        (push.join().unwrap(), stored)
    });
    assert!(
        (1..total).contains(&on_server_at_kill),
        "the server died with {on_server_at_kill} of {total} chunks: not in the middle"
    );
    let message = expect_failure(&first_push, "push to a server that died");
    assert!(
        message.contains(&server.url),
        "the remote is not named: {message}"
    );

    let server = Server::on_dir(&storage, &[]);
    let rerun = a.json(&["push", "--remote", &server.url, "--jobs", "1", "--json"]);
    let present = count(&rerun, "chunks_present");
    let sent = count(&rerun, "chunks_transferred");
    assert!(present >= on_server_at_kill, "{rerun:#}");
    assert_eq!(present + sent, total, "{rerun:#}");
    assert_eq!(objects_in(&storage).len() as u64, total);

    let b = machine_b(&a);
    let _ = b.ok(&["pull", MANIFEST, "--remote", &server.url]);
    assert_same(&b, FILE, &data);
}

#[test]
fn an_unreachable_server_is_named_and_nothing_hangs() {
    let data = random_bytes(340, MIB);
    let a = machine_a();
    publish(&a, FILE, &data, "v1");
    let url = format!("http://127.0.0.1:{}", dead_port());

    let message = a.fails(&["push", "--remote", &url]);
    assert!(message.contains(&url), "the remote is not named: {message}");
    assert!(message.contains("unreachable"), "{message}");

    let b = machine_b(&a);
    let message = b.fails(&["pull", MANIFEST, "--remote", &url]);
    assert!(message.contains(&url), "the remote is not named: {message}");
    assert!(!b.path(FILE).exists());
}

/// The server side of issue 5: a push stores its manifest (after its chunks) as a root, and
/// `shard-server gc`, even with no grace period, keeps every chunk it references.
#[test]
fn pushed_manifests_are_roots_that_shard_server_gc_keeps() {
    let a = machine_a();
    publish(&a, FILE, &random_bytes(302, 8 * MIB), "v1");
    let storage = a.base().join("server-data");
    let server = Server::on_dir(&storage, &[]);
    let _ = a.ok(&["push", "--remote", &server.url]);
    let stored: Vec<_> = std::fs::read_dir(storage.join("manifests"))
        .expect("a manifests/ directory")
        .flat_map(|fanout| std::fs::read_dir(fanout.expect("entry").path()).expect("fan-out"))
        .map(|entry| std::fs::read_to_string(entry.expect("entry").path()).expect("manifest"))
        .collect();
    let working = std::fs::read_to_string(a.path(MANIFEST)).expect("working manifest");
    assert_eq!(stored, [working], "the pushed manifest, byte for byte");

    let storage_arg = storage.to_str().expect("UTF-8 path");
    let shard_server = |args: &[&str]| {
        std::process::Command::new(shard_server_bin())
            .args(args)
            .args(["--storage", storage_arg])
            .output()
            .expect("run shard-server")
    };
    let gc = shard_server(&["gc", "--grace", "0s"]);
    let said = String::from_utf8_lossy(&gc.stdout);
    assert!(gc.status.success(), "{gc:?}");
    assert!(said.contains("deleted 0 chunks"), "{said}");
    assert_eq!(objects_in(&storage).len() as u64, chunks_of(&a, FILE));
    let verify = shard_server(&["verify"]);
    assert!(verify.status.success(), "{verify:?}");
}

#[test]
fn a_named_remote_may_carry_its_token_in_the_clones_config_but_never_in_shardconfig() {
    let a = machine_a();
    let data = random_bytes(620, 2 * MIB);
    publish(&a, FILE, &data, "v1");
    let tokens = a.base().join("tokens");
    std::fs::write(&tokens, "rw writer-secret\n").unwrap();
    let storage = a.base().join("server-storage");
    let server = Server::on_dir(&storage, &["--token-file", tokens.to_str().unwrap()]);
    let _ = a.ok(&["remote", "add", "team", &server.url]);
    let message = a.fails(&["push", "--remote", "team"]);
    assert!(message.contains("token"), "{message}");

    let config = a.path(".shard/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let with_token = text.replace(
        &format!("url = \"{}\"", server.url),
        &format!("url = \"{}\"\ntoken = \"writer-secret\"", server.url),
    );
    assert_ne!(
        text, with_token,
        "the remote's entry was not found:\n{text}"
    );
    std::fs::write(&config, with_token).unwrap();
    let said = a.ok(&["push", "--remote", "team"]);
    assert!(said.contains("pushed"), "{said}");
    assert_eq!(objects_in(&storage).len() as u64, chunks_of(&a, FILE));
    // NSHARD_TOKEN still wins.
    let wrong = [("NSHARD_TOKEN".to_owned(), "wrong-secret".to_owned())];
    let _ = expect_failure(
        &run(&a, &["push", "--remote", "team"], &wrong),
        "wrong env token",
    );

    // A token in the committed .shardconfig is refused, naming the remote.
    a.write(
        ".shardconfig",
        format!(
            "[remotes.shared]\nurl = \"{}\"\ntoken = \"writer-secret\"\n",
            server.url
        )
        .as_bytes(),
    );
    let message = a.fails(&["push", "--remote", "shared"]);
    assert!(message.contains(".shardconfig"), "{message}");
    assert!(message.contains("`shared`"), "{message}");
    // Only where remotes are used: a teammate's mistake does not stop local work.
    let _ = a.ok(&["status"]);
}
