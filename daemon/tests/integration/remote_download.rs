//! Downloads into reused buffers (`Remote::get_into`), from the in-process `shard-server` and
//! from a directory remote, and a misbehaving server whose chunk body is larger than any
//! stored object: the client refuses it instead of buffering it.

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use shardd::chunk::{ChunkHash, codec};
use shardd::store::remote::{Error, Remote};

use crate::chunk_server::{ChunkServer, compressible};

#[tokio::test]
async fn downloads_refill_the_callers_buffer_from_servers_and_directories() {
    let server = ChunkServer::open().await;
    let (a, object_a) = compressible(1, 100_000);
    let (b, object_b) = compressible(2, 10_000);
    let (cwd, env) = (server.dir.path(), HashMap::new());
    let http = Remote::open(&server.url(""), cwd, &env).unwrap();
    let dir = Remote::open("dir-remote", cwd, &env).unwrap();
    std::fs::create_dir(cwd.join("dir-remote")).unwrap();
    for remote in [&http, &dir] {
        remote.put(&a, Bytes::from(object_a.clone())).await.unwrap();
        remote.put(&b, Bytes::from(object_b.clone())).await.unwrap();
        let mut buffer = b"stale bytes".to_vec();
        remote.get_into(&a, &mut buffer).await.unwrap();
        assert_eq!(buffer, object_a);
        let reused = buffer.as_ptr();
        remote.get_into(&b, &mut buffer).await.unwrap();
        assert_eq!(buffer, object_b, "the next object replaces the last");
        assert_eq!(buffer.as_ptr(), reused, "the allocation is reused");
        codec::verify(&buffer, &b).unwrap();

        let absent = ChunkHash::of(b"never stored");
        let err = remote.get_into(&absent, &mut buffer).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
    }
}

/// Serves `body()` for every chunk on `127.0.0.1:0`; returns the base URL.
async fn serve_chunks(body: fn() -> Body) -> String {
    let app = Router::new().route("/v1/chunks/{hash}", get(move || async move { body() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let _server = tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn a_chunk_body_larger_than_any_object_is_refused() {
    fn declared() -> Body {
        Body::from(vec![1u8; codec::MAX_OBJECT_BYTES + 1])
    }
    fn streamed() -> Body {
        // No Content-Length: the limit is enforced as the frames arrive.
        let frame = Bytes::from(vec![1u8; 1 << 20]);
        let frames = (0..=codec::MAX_OBJECT_BYTES >> 20)
            .map(move |_| Ok::<_, std::io::Error>(frame.clone()));
        Body::from_stream(futures::stream::iter(frames))
    }
    for body in [declared as fn() -> Body, streamed] {
        let url = serve_chunks(body).await;
        let remote = Remote::open(&url, std::path::Path::new("/"), &HashMap::new()).unwrap();
        let mut buffer = Vec::new();
        let err = remote
            .get_into(&ChunkHash::of(b"x"), &mut buffer)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("larger than any stored object"),
            "{err}"
        );
        assert!(buffer.len() <= codec::MAX_OBJECT_BYTES);
    }
}
