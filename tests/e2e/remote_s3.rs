//! S3-compatible storage through a real S3 server (moto, installed by `.ci/run`): directly as an
//! `s3://bucket/prefix` remote, with the `AWS_*` settings in each `nshard` invocation's
//! environment only (the daemon never has them) or in the caller's `~/.aws/` profiles, and as
//! the backend of `shard-server`s.

use crate::remote_fixtures::{
    FILE, MANIFEST, Moto, Server, assert_same, chunks_of, count, json_with, machine_a, machine_b,
    publish, run,
};
use crate::sandbox::{MIB, expect_failure, random_bytes};

/// The environment of one invocation.
fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn push_and_pull_directly_through_s3() {
    let moto = Moto::start();
    moto.create_bucket("team-models");
    let aws = moto.aws_env();
    let data = random_bytes(500, 6 * MIB);
    let a = machine_a();
    publish(&a, FILE, &data, "v1");
    let total = chunks_of(&a, FILE);
    let url = "s3://team-models/projects/vision";
    // A's daemon is already running, started by commands that had no AWS_* variables.

    let pushed = json_with(&a, &["push", "--remote", url, "--json"], &aws);
    assert_eq!(count(&pushed, "chunks_transferred"), total, "{pushed:#}");
    let again = json_with(&a, &["push", "--remote", url, "--json"], &aws);
    assert_eq!(count(&again, "chunks_transferred"), 0, "{again:#}");
    assert_eq!(count(&again, "chunks_present"), total, "{again:#}");

    let b = machine_b(&a);
    let pulled = json_with(&b, &["pull", MANIFEST, "--remote", url, "--json"], &aws);
    assert_eq!(count(&pulled, "chunks_transferred"), total, "{pulled:#}");
    assert_same(&b, FILE, &data);

    // Another prefix of the same bucket is another remote: it has none of the chunks.
    let b2 = machine_b(&a);
    let out = run(
        &b2,
        &["pull", "--remote", "s3://team-models/elsewhere"],
        &aws,
    );
    let message = expect_failure(&out, "pull from an empty prefix");
    assert!(message.contains("s3://team-models/elsewhere"), "{message}");
    assert!(!b2.path(FILE).exists());
}

#[test]
fn shard_servers_share_one_s3_bucket() {
    let moto = Moto::start();
    moto.create_bucket("chunks");
    let aws = moto.aws_env();
    let storage = "s3://chunks/neuroshard";
    let first = Server::start(storage, &[], &aws);
    let second = Server::start(storage, &[], &aws);
    let data = random_bytes(510, 6 * MIB);
    let a = machine_a();
    publish(&a, FILE, &data, "v1");
    let total = chunks_of(&a, FILE);

    // The seed forms, verbatim, with no AWS_* anywhere near nshard or its daemon.
    let said = a.ok(&["push", "--remote", &first.url]);
    assert!(said.contains("pushed"), "{said}");
    let again = a.json(&["push", "--remote", &second.url, "--json"]);
    assert_eq!(count(&again, "chunks_transferred"), 0, "{again:#}");
    assert_eq!(count(&again, "chunks_present"), total, "{again:#}");

    let b = machine_b(&a);
    let _ = b.ok(&["pull", MANIFEST, "--remote", &second.url]);
    assert_same(&b, FILE, &data);
}

#[test]
fn a_missing_bucket_is_named_in_the_error() {
    let moto = Moto::start();
    let aws = moto.aws_env();
    let a = machine_a();
    publish(&a, FILE, &random_bytes(520, MIB), "v1");
    let url = "s3://no-such-bucket/models";

    let out = run(&a, &["push", "--remote", url], &aws);

    let message = expect_failure(&out, "push to a missing bucket");
    assert!(message.contains(url), "the remote is not named: {message}");
    assert!(message.contains("bucket"), "{message}");
    assert!(message.contains("does not exist"), "{message}");
}

#[test]
fn profiles_in_the_shared_aws_files_configure_the_remote() {
    let moto = Moto::start();
    moto.create_bucket("profiled");
    let a = machine_a();
    // `~/.aws/` as `aws configure` leaves it: the endpoint is known only to profile `ml`, so
    // the push reaches moto only if that profile is read.
    let aws = a.base().join("home/.aws");
    std::fs::create_dir_all(&aws).expect("mkdir ~/.aws");
    std::fs::write(
        aws.join("credentials"),
        "[default]\naws_access_key_id = unused\naws_secret_access_key = unused\n\n\
         [ml]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .expect("write credentials");
    let config = format!(
        "[profile ml]\nregion = us-east-1\nendpoint_url = {}\n",
        moto.endpoint
    );
    std::fs::write(aws.join("config"), config).expect("write config");
    let data = random_bytes(530, 5 * MIB);
    publish(&a, FILE, &data, "v1");
    let total = chunks_of(&a, FILE);
    let url = "s3://profiled/models";

    let pushed = json_with(
        &a,
        &["push", "--remote", url, "--json"],
        &vars(&[("AWS_PROFILE", "ml")]),
    );
    assert_eq!(count(&pushed, "chunks_transferred"), total, "{pushed:#}");

    // Another machine names the same files explicitly.
    let b = machine_b(&a);
    let (credentials, config) = (aws.join("credentials"), aws.join("config"));
    let explicit = vars(&[
        ("AWS_PROFILE", "ml"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            credentials.to_str().expect("utf-8"),
        ),
        ("AWS_CONFIG_FILE", config.to_str().expect("utf-8")),
    ]);
    let pulled = json_with(
        &b,
        &["pull", MANIFEST, "--remote", url, "--json"],
        &explicit,
    );
    assert_eq!(count(&pulled, "chunks_transferred"), total, "{pulled:#}");
    assert_same(&b, FILE, &data);

    // A profile that is not there is named, with the variable that chose it.
    let out = run(
        &a,
        &["push", "--remote", url],
        &vars(&[("AWS_PROFILE", "mll")]),
    );
    let message = expect_failure(&out, "push with an unknown profile");
    assert!(message.contains("`mll`"), "{message}");
    assert!(message.contains("AWS_PROFILE"), "{message}");
    assert_eq!(out.status.code(), Some(1), "{message}");
}
