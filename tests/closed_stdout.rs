//! A printing command whose reader goes away (`tandem card | head -0`) exits quietly with
//! status 0, without resetting SIGPIPE (which would also kill the node on a closed socket).

mod common;

use std::process::{Command, Stdio};

use common::{ok, s};

#[test]
fn closed_stdout_exits_quietly() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("acme");
    ok(&[
        "init",
        "--dir",
        s(&dir),
        "--name",
        "acme",
        "--listen",
        "127.0.0.1:0",
    ]);
    for _ in 0..5 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(["card", "--dir", s(&dir)])
            .env("TANDEM_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tandem runs");
        // Close the read end before the command prints.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("tandem exits");
        assert_eq!(
            out.status.code(),
            Some(0),
            "status {:?}, stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
