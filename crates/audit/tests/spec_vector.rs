//! Checks the test vector of `protocols/audit-log-v1.md` §9, read from the markdown itself.

use std::collections::HashMap;

use tandem_audit::*;

/// Fenced blocks whose info string has a `tv:` word, keyed by that word. Content is the lines
/// joined by LF without the final LF.
fn vector_blocks() -> HashMap<String, String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../protocols/audit-log-v1.md"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut blocks = HashMap::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in text.lines() {
        match current.take() {
            None => {
                if let Some(info) = line.strip_prefix("```")
                    && let Some(tag) = info.split_whitespace().find(|w| w.starts_with("tv:"))
                {
                    current = Some((tag.to_string(), Vec::new()));
                }
            }
            Some((tag, lines)) if line == "```" => {
                assert!(
                    blocks.insert(tag.clone(), lines.join("\n")).is_none(),
                    "duplicate {tag}"
                );
            }
            Some((tag, mut lines)) => {
                lines.push(line);
                current = Some((tag, lines));
            }
        }
    }
    blocks
}

fn block<'a>(b: &'a HashMap<String, String>, tag: &str) -> &'a str {
    b.get(tag)
        .unwrap_or_else(|| panic!("spec has no block {tag}"))
}

struct Vector {
    key: SigningKey,
    entries: Vec<Entry>,
    checkpoint: Checkpoint,
}

fn build(b: &HashMap<String, String>) -> Vector {
    let mut seed = [0u8; 32];
    hex::decode_to_slice(block(b, "tv:seed"), &mut seed).unwrap();
    let key = SigningKey::from_bytes(&seed);
    let events: Vec<AuditEvent> = serde_json::from_str(block(b, "tv:events")).unwrap();
    let mut entries: Vec<Entry> = Vec::new();
    for e in events {
        let next = next_entry(entries.last(), e);
        entries.push(next);
    }
    let checkpoint = sign_checkpoint(&key, 2, entries[2].hash, 1_767_225_780_000);
    Vector {
        key,
        entries,
        checkpoint,
    }
}

#[test]
fn spec_vector_reproduces() {
    let b = vector_blocks();
    let v = build(&b);
    assert_eq!(
        hex::encode(v.key.verifying_key().as_bytes()),
        block(&b, "tv:node-key")
    );
    let e0 = &v.entries[0];
    assert_eq!(
        String::from_utf8(entry_hash_input(0, &e0.prev_hash, &e0.event)).unwrap(),
        block(&b, "tv:hash-input-0")
    );
    let hashes: Vec<String> = v.entries.iter().map(|e| hex::encode(e.hash)).collect();
    assert_eq!(hashes.join("\n"), block(&b, "tv:hashes"));
    let cp = &v.checkpoint;
    let msg = checkpoint_message(cp.seq, &cp.head_hash, cp.at_unix_ms, &cp.node_key);
    assert_eq!(
        String::from_utf8(msg).unwrap(),
        block(&b, "tv:checkpoint-message")
    );

    let mut out = Vec::new();
    export(
        &mut out,
        ExportFormat::JsonLines,
        v.entries.clone(),
        std::slice::from_ref(cp),
    )
    .unwrap();
    let expected = format!("{}\n", block(&b, "tv:export"));
    assert_eq!(String::from_utf8(out).unwrap(), expected);

    let rep = verify_jsonl(expected.as_bytes(), Some(&v.key.verifying_key())).unwrap();
    assert_eq!(
        (rep.entries, rep.checkpoints, rep.last_seq),
        (3, 1, Some(2))
    );
    assert_eq!(hex::encode(rep.head_hash), hashes[2]);
}

#[test]
fn spec_negative_checks() {
    let b = vector_blocks();
    let export = format!("{}\n", block(&b, "tv:export"));
    let lines: Vec<&str> = export.lines().collect();
    let without = |i: usize| -> String {
        lines
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, l)| format!("{l}\n"))
            .collect()
    };

    let altered = export.replacen("\"epsilon\":0.5", "\"epsilon\":0.6", 1);
    assert!(matches!(
        verify_jsonl(altered.as_bytes(), None),
        Err(VerifyError::BadHash { seq: 1 })
    ));
    assert!(matches!(
        verify_jsonl(without(1).as_bytes(), None),
        Err(VerifyError::Missing {
            expected: 1,
            found: 2
        })
    ));
    assert!(matches!(
        verify_jsonl(without(2).as_bytes(), None),
        Err(VerifyError::Truncated {
            missing_from: 2,
            checkpoint_seq: 2
        })
    ));
    let other = SigningKey::from_bytes(&[42; 32]).verifying_key();
    assert!(matches!(
        verify_jsonl(export.as_bytes(), Some(&other)),
        Err(VerifyError::CheckpointSignature { seq: 2, .. })
    ));
}
