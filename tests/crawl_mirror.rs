//! `parafetch crawl` on a real site: the Python documentation from Debian's `python3-doc`,
//! served by nginx on loopback. The HTML pages it reaches are those `wget --recursive
//! --level=inf --no-parent` reaches on the same mirror; no URL is fetched twice; the WARC
//! passes `warcio check` with one request and one response record per fetch.
#![cfg(feature = "cli")]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use parafetch_test_support::nginx::Nginx;
use parafetch_test_support::tools::{self, PYTHON_DOCS, WARCIO, WGET};
use serde_json::Value;

/// nginx serving the docs under `/python/`.
fn docs_server() -> Option<Nginx> {
    if !Path::new(PYTHON_DOCS).join("index.html").exists() {
        return tools::unavailable(&format!(
            "{PYTHON_DOCS} is missing (apt-get install python3-doc)"
        ));
    }
    let nginx = Nginx::start_for_test(&[], None)?;
    std::os::unix::fs::symlink(PYTHON_DOCS, nginx.dir().join("www/python")).unwrap();
    Some(nginx)
}

/// A page's path under `/python/` as wget would store it (`dir/` is `dir/index.html`).
fn as_file(path: &str) -> String {
    let p = path.strip_prefix("/python/").unwrap_or(path);
    if p.is_empty() || p.ends_with('/') {
        format!("{p}index.html")
    } else {
        p.to_owned()
    }
}

#[test]
fn the_python_docs_crawl_reaches_what_wget_reaches_each_page_once() {
    let Some(nginx) = docs_server() else { return };
    let Some(wget) = tools::require(&WGET) else {
        return;
    };
    let Some(warcio) = tools::require(&WARCIO) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("parafetch-mirror-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let seed = nginx.url("/python/index.html");
    let warc = dir.join("docs.warc.gz");

    let out = Command::new(env!("CARGO_BIN_EXE_parafetch"))
        .args(["crawl", "--jsonl", "-q", "-n", "16", "--per-host", "16"])
        .args(["--scope", "prefix", "--warc"])
        .arg(&warc)
        .arg(&seed)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // No URL fetched twice.
    let urls: Vec<&str> = recs.iter().map(|r| r["url"].as_str().unwrap()).collect();
    let unique: BTreeSet<&str> = urls.iter().copied().collect();
    assert_eq!(unique.len(), urls.len(), "a URL fetched twice");
    let html = |r: &&Value| {
        r["status"] == 200
            && r["headers"].as_array().unwrap().iter().any(|h| {
                h[0].as_str().unwrap().eq_ignore_ascii_case("content-type")
                    && h[1].as_str().unwrap().starts_with("text/html")
            })
    };
    let ours: BTreeSet<String> = recs
        .iter()
        .filter(html)
        .map(|r| as_file(url::Url::parse(r["url"].as_str().unwrap()).unwrap().path()))
        .collect();
    assert!(
        ours.len() > 400,
        "the docs have some 500 pages: {}",
        ours.len()
    );

    // The reference: wget's recursive crawl of the same mirror, the HTML files it saved.
    let saved = dir.join("wget");
    let status = Command::new(&wget)
        .args(["-r", "-l", "inf", "--no-parent", "-q", "-P"])
        .arg(&saved)
        .arg(&seed)
        .status()
        .unwrap();
    assert!(
        status.success() || status.code() == Some(8),
        "wget: {status:?}"
    );
    let root = saved
        .join(format!("127.0.0.1:{}", nginx.http.port()))
        .join("python");
    let mut theirs = BTreeSet::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "html") {
                theirs.insert(
                    p.strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    // The same pages. (Differences there could be, and are not: wget also fetches page
    // requisites (CSS, scripts, images) and parafetch other linked files (the `_sources`
    // text files), neither of which is HTML; both stay below /python/.)
    let only_ours: Vec<&String> = ours.difference(&theirs).collect();
    let only_theirs: Vec<&String> = theirs.difference(&ours).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only parafetch: {only_ours:?}\nonly wget: {only_theirs:?}"
    );

    // The WARC: warcio's digests agree, one request and one response per fetch.
    let index = parafetch_test_support::warcio::check_and_index(&warcio, &warc);
    let fetched = recs.iter().filter(|r| r["error"].is_null()).count();
    assert_eq!(index.response, fetched);
    assert_eq!(index.request, fetched);
    let _ = std::fs::remove_dir_all(&dir);
}
