//! The compose example (`examples/compose.rs`: the crates on one shared SQLite pool, in
//! the right order) runs in the test command, so it cannot silently rot.
#![cfg(feature = "sqlite")]

#[path = "../examples/compose.rs"]
#[allow(dead_code)] // The example's own `main`.
mod example;

#[tokio::test]
async fn the_compose_example_runs() {
    let dir = tempfile::tempdir().unwrap();
    example::run(&dir.path().join("service.db")).await.unwrap();
}
