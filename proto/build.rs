//! Compiles `shard/v1/shardd.proto` with protox (pure Rust, so no `protoc` is needed) and
//! generates the tonic client and server stubs plus a descriptor set for server reflection.

use std::path::PathBuf;

#[expect(
    clippy::disallowed_methods,
    reason = "OUT_DIR comes from cargo's environment"
)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=shard/v1");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("shard_descriptor.bin");

    let fds = protox::compile(["shard/v1/shardd.proto"], ["."])?;
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&fds))?;

    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .compile_protos(&["shard/v1/shardd.proto"], &["."])?;
    Ok(())
}
