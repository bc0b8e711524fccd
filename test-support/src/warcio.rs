//! warcio, run on a WARC file a test wrote: `warcio check` (every block and payload digest
//! recomputed) must pass, and `warcio index` says how many records of each type it holds.
//!
//! Owns running the tool and reading its output. Must not: look for warcio itself
//! ([`crate::tools::require`] with [`crate::tools::WARCIO`] does).

use std::path::Path;
use std::process::Command;

/// What `warcio index` listed, by record type, and the index itself for messages.
#[derive(Debug)]
pub struct Index {
    /// `warcinfo` records.
    pub warcinfo: usize,
    /// `request` records.
    pub request: usize,
    /// `response` records.
    pub response: usize,
    /// warcio's output, one JSON line per record.
    pub text: String,
}

/// Runs `warcio check` on `file` (panicking with its output if it fails), then
/// `warcio index`, and counts the records by type.
///
/// # Panics
/// If warcio cannot be run or the check fails.
pub fn check_and_index(warcio: &Path, file: &Path) -> Index {
    let check = Command::new(warcio)
        .arg("check")
        .arg(file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "warcio check {}: {}",
        file.display(),
        String::from_utf8_lossy(&check.stdout)
    );
    let out = Command::new(warcio)
        .arg("index")
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let count = |t: &str| text.matches(&format!("\"{t}\"")).count();
    Index {
        warcinfo: count("warcinfo"),
        request: count("request"),
        response: count("response"),
        text,
    }
}
