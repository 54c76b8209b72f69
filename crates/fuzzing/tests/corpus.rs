//! Replays every file of the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the same
//! entry points the `cargo fuzz` targets call, so CI catches a regression on stable.

use std::path::{Path, PathBuf};

use tandem_fuzzing::TARGETS;

fn fuzz_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn corpus_root() -> PathBuf {
    fuzz_root().join("corpus")
}

#[test]
fn every_corpus_file_replays_without_a_panic() {
    let mut total = 0;
    for (name, entry) in TARGETS {
        let dir = corpus_root().join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for {name}");
        for file in &files {
            let data = std::fs::read(file).unwrap();
            let outcome = std::panic::catch_unwind(|| entry(&data));
            assert!(outcome.is_ok(), "{name}: {} panicked", file.display());
        }
        total += files.len();
    }
    println!("replayed {total} corpus files");
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    for (name, _) in TARGETS {
        let path = fuzz_root().join(format!("fuzz_targets/{name}.rs"));
        assert!(path.is_file(), "{} missing", path.display());
    }
}

/// Writes the seed inputs into the corpus directories (named by content hash, as cargo fuzz
/// does). Run once by hand: `cargo test -p tandem-fuzzing -- --ignored write_seed_corpus`.
#[test]
#[ignore]
fn write_seed_corpus() {
    use std::hash::{Hash, Hasher};
    for (name, data) in tandem_fuzzing::seeds() {
        let dir = corpus_root().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        data.hash(&mut h);
        std::fs::write(dir.join(format!("seed-{:016x}", h.finish())), &data).unwrap();
    }
}
