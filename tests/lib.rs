//! Nothing here: the end-to-end tests live in `e2e/` and drive the built binaries.
