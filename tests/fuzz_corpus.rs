//! Replays every committed fuzz input (the seed corpus and every crash ever found, under
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`) through the same functions the
//! cargo-fuzz targets call, on stable, in every `cargo test`.

use std::path::Path;

type Target = fn(&[u8]);

fn replay(target: &str, run: Target) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target}: {} panics", path.display());
            n += 1;
        }
    }
    n
}

#[test]
fn fuzz_corpus_replays_clean() {
    use parafetch::fuzzing as f;
    let targets: [(&str, Target); 9] = [
        ("response_head", f::response_head),
        ("chunked", f::chunked),
        ("split_differential", f::split_differential),
        ("exchange_ops", f::exchange_ops),
        ("dns_message", f::dns_message),
        ("content_decoder", f::content_decoder),
        ("connect_reply", f::connect_reply),
        ("socks_reply", f::socks_reply),
        ("robots", f::robots),
    ];
    for (name, run) in targets {
        let n = replay(name, run);
        assert!(n > 0, "no corpus for {name}");
    }
}

#[cfg(feature = "crawl")]
#[test]
fn crawl_fuzz_corpus_replays_clean() {
    let n = replay("links", parafetch::fuzzing::links);
    assert!(n > 0, "no corpus for links");
}
