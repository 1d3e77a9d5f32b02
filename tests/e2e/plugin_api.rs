//! The gRPC API as an editor plugin (or `grpcurl`) uses it, without `nshard`: server
//! reflection lists and describes the service, `Status` answers over the socket, and
//! `Subscribe` reports commits. Each test boots its own daemon in a `Sandbox` (via `nshard`)
//! and then talks to its socket directly. `docs/api.md` documents what these tests exercise.

use std::time::Duration;

use prost::Message as _;
use shard_proto::shardd_client::SharddClient;
use shard_proto::{FileEvent, FileState, StatusRequest};
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

use crate::grpc::{Events, channel, is, runtime};
use crate::sandbox::{MIB, Sandbox, random_bytes, sha256_hex};

/// How long a small commit's event may take to arrive (a safety net).
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends one reflection request (what `grpcurl list` / `describe` send) and returns the answer.
fn reflect(s: &Sandbox, request: MessageRequest) -> MessageResponse {
    runtime().block_on(async {
        let channel = channel(s.socket()).await.expect("connect to the daemon");
        let mut client = ServerReflectionClient::new(channel);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        };
        let mut answers = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("the daemon serves grpc.reflection.v1")
            .into_inner();
        let answer: ServerReflectionResponse = answers
            .message()
            .await
            .expect("a reflection answer")
            .expect("one answer per request");
        answer.message_response.expect("the answer has a body")
    })
}

#[test]
fn reflection_lists_the_shardd_service() {
    let s = Sandbox::with_repo();

    let MessageResponse::ListServicesResponse(list) =
        reflect(&s, MessageRequest::ListServices(String::new()))
    else {
        panic!("ListServices was not answered with a service list");
    };

    let names: Vec<&str> = list.service.iter().map(|sv| sv.name.as_str()).collect();
    assert!(names.contains(&"shard.v1.Shardd"), "{names:?}");
    assert!(
        names.contains(&"grpc.reflection.v1.ServerReflection"),
        "{names:?}"
    );
}

#[test]
fn reflection_v1alpha_is_served_for_older_tools() {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let s = Sandbox::with_repo();

    let answer = runtime().block_on(async {
        let channel = channel(s.socket()).await.expect("connect to the daemon");
        let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("the daemon serves grpc.reflection.v1alpha")
            .into_inner()
            .message()
            .await
            .expect("a reflection answer")
            .and_then(|a| a.message_response)
    });

    let Some(MessageResponse::ListServicesResponse(list)) = answer else {
        panic!("ListServices was not answered with a service list: {answer:?}");
    };
    assert!(
        list.service.iter().any(|sv| sv.name == "shard.v1.Shardd"),
        "{list:?}"
    );
}

#[test]
fn reflection_describes_every_rpc_with_its_comments() {
    let s = Sandbox::with_repo();

    let answer = reflect(
        &s,
        MessageRequest::FileContainingSymbol("shard.v1.Shardd".to_owned()),
    );

    let MessageResponse::FileDescriptorResponse(files) = answer else {
        panic!("FileContainingSymbol was not answered with descriptors: {answer:?}");
    };
    let file = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .find(|f| f.package() == "shard.v1")
        .expect("the descriptor of shard/v1/shardd.proto");
    let service = file
        .service
        .iter()
        .find(|sv| sv.name() == "Shardd")
        .expect("service Shardd");
    let rpcs: Vec<&str> = service
        .method
        .iter()
        .map(prost_types::MethodDescriptorProto::name)
        .collect();
    for rpc in ["DaemonStatus", "Status", "Commit", "Subscribe"] {
        assert!(rpcs.contains(&rpc), "{rpc} is not described: {rpcs:?}");
    }
    let subscribe = service
        .method
        .iter()
        .find(|m| m.name() == "Subscribe")
        .unwrap();
    assert!(subscribe.server_streaming(), "Subscribe must stream");
    assert_eq!(subscribe.input_type(), ".shard.v1.SubscribeRequest");
    // The descriptor carries the proto's comments, so `grpcurl describe` documents the API.
    let commented = file.source_code_info.as_ref().is_some_and(|info| {
        info.location
            .iter()
            .any(|l| !l.leading_comments().is_empty())
    });
    assert!(commented, "the served descriptor has no comments");
}

#[test]
fn status_over_grpc_matches_the_command_line() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(5, MIB));
    let _ = s.ok(&["commit", "-m", "m"]);
    s.write("models/b.bin", &random_bytes(6, MIB));
    let cli = s.json(&["status", "--json"]);

    let status = runtime().block_on(async {
        let channel = channel(s.socket()).await.expect("connect to the daemon");
        SharddClient::new(channel)
            .status(StatusRequest {
                cwd: s.path("models").to_str().unwrap().to_owned(),
            })
            .await
            .expect("Status answers")
            .into_inner()
    });

    assert_eq!(status.root, s.root().to_str().unwrap());
    assert_eq!(cli["root"], status.root.as_str());
    let files: Vec<(&str, FileState)> = status
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.state()))
        .collect();
    assert_eq!(
        files,
        [
            ("models/a.bin", FileState::Clean),
            ("models/b.bin", FileState::New)
        ]
    );
    assert_eq!(status.files[0].size, MIB as u64);
}

#[test]
fn subscribe_reports_a_commit_with_the_committed_hash() {
    let s = Sandbox::with_repo();
    let data = random_bytes(7, MIB);
    s.write("models/a.bin", &data);
    let mut events = Events::of_repo(&s);

    let _ = s.ok(&["commit", "-m", "m"]);

    let committed = events.wait_for("COMMITTED event", EVENT_TIMEOUT, |e| {
        is(e, FileEvent::Committed, "models/a.bin")
    });
    assert_eq!(committed.sha256, sha256_hex(&data));
    assert_eq!(committed.root, s.root().to_str().unwrap());
}

#[test]
fn subscribe_outside_a_repository_is_refused() {
    let s = Sandbox::with_repo();
    let outside = s.base().join("tmp");

    let refused = runtime().block_on(async {
        let channel = channel(s.socket()).await.expect("connect to the daemon");
        SharddClient::new(channel)
            .subscribe(shard_proto::SubscribeRequest {
                cwd: outside.to_str().unwrap().to_owned(),
            })
            .await
            .map(|_| ())
            .expect_err("no repository there")
    });

    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("repository"),
        "the message should say why: {refused:?}"
    );
}

/// An editor keeps its subscription open for as long as it runs; the daemon must still stop
/// (its graceful shutdown used to wait for every open stream, so it never exited).
#[test]
fn a_subscriber_does_not_keep_the_daemon_from_stopping() {
    let s = Sandbox::with_repo();
    let mut events = Events::of_repo(&s);

    let _ = s.ok(&["daemon", "stop"]);

    let _ = events.wait_until_ended(EVENT_TIMEOUT);
    assert_eq!(s.json(&["daemon", "status", "--json"])["running"], false);
}

#[test]
fn a_cwd_that_is_not_an_existing_absolute_directory_is_an_invalid_argument() {
    let s = Sandbox::with_repo();
    let _ = s.ok(&["status"]);
    let missing = s.base().join("no-such-dir");
    for cwd in ["", "relative/dir", missing.to_str().unwrap()] {
        let refused = runtime().block_on(async {
            let channel = channel(s.socket()).await.expect("connect to the daemon");
            SharddClient::new(channel)
                .status(StatusRequest {
                    cwd: cwd.to_owned(),
                })
                .await
                .expect_err("no such directory")
        });
        assert_eq!(
            refused.code(),
            tonic::Code::InvalidArgument,
            "{cwd:?}: {refused:?}"
        );
        assert!(refused.message().contains("absolute path"), "{refused:?}");
        // Init too: a relative cwd must not be taken relative to the daemon's own directory.
        let refused = runtime().block_on(async {
            let channel = channel(s.socket()).await.expect("connect to the daemon");
            SharddClient::new(channel)
                .init(shard_proto::InitRequest {
                    cwd: cwd.to_owned(),
                    ..Default::default()
                })
                .await
                .expect_err("no such directory")
        });
        assert_eq!(
            refused.code(),
            tonic::Code::InvalidArgument,
            "init {cwd:?}: {refused:?}"
        );
    }
}
