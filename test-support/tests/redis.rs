//! The redis-server launcher against the real thing: it answers on loopback with
//! persistence off, a password is enforced, a restart keeps the port and starts empty, and
//! dropping it ends the process.

use std::net::TcpStream;

use parafetch_test_support::redis::{Conn, Redis, Reply};

fn config(conn: &mut Conn, name: &str) -> String {
    let r = conn.cmd(&["CONFIG", "GET", name]).unwrap();
    r.items()
        .get(1)
        .and_then(Reply::text)
        .unwrap_or_else(|| panic!("CONFIG GET {name}: {r:?}"))
        .to_owned()
}

#[test]
fn starts_on_loopback_with_persistence_off() {
    let Some(redis) = Redis::start_for_test(None) else {
        return;
    };
    assert!(redis.addr.ip().is_loopback());
    assert_ne!(
        redis.addr.port(),
        6379,
        "an ephemeral port, not the default"
    );
    assert!(
        redis.version.starts_with("Redis server v="),
        "{}",
        redis.version
    );
    assert_eq!(redis.url(), format!("redis://{}", redis.addr));
    let mut c = redis.connect();
    assert_eq!(c.cmd(&["PING"]).unwrap().text(), Some("PONG"));
    assert_eq!(config(&mut c, "save"), "");
    assert_eq!(config(&mut c, "appendonly"), "no");
    assert_eq!(config(&mut c, "bind"), "127.0.0.1");
    assert_eq!(c.cmd(&["SET", "k", "v"]).unwrap().text(), Some("OK"));
    assert_eq!(c.cmd(&["GET", "k"]).unwrap().text(), Some("v"));
    assert!(redis.log().contains("Ready to accept connections"));
}

#[test]
fn two_instances_do_not_share_anything() {
    let Some(a) = Redis::start_for_test(None) else {
        return;
    };
    let Some(b) = Redis::start_for_test(None) else {
        return;
    };
    assert_ne!(a.addr, b.addr);
    a.connect().cmd(&["SET", "k", "a"]).unwrap();
    assert_eq!(b.connect().cmd(&["GET", "k"]).unwrap(), Reply::Bulk(None));
}

#[test]
fn a_password_is_required_and_in_the_url() {
    let Some(redis) = Redis::start_for_test(Some("s3cret")) else {
        return;
    };
    assert_eq!(redis.url(), format!("redis://:s3cret@{}", redis.addr));
    let mut anonymous = Conn::connect(redis.addr, None).unwrap();
    match anonymous.cmd(&["PING"]).unwrap() {
        Reply::Error(e) => assert!(e.starts_with("NOAUTH"), "{e}"),
        other => panic!("PING without AUTH answered {other:?}"),
    }
    assert!(Conn::connect(redis.addr, Some("wrong")).is_err());
    assert_eq!(redis.connect().cmd(&["PING"]).unwrap().text(), Some("PONG"));
}

#[test]
fn restart_keeps_the_port_and_starts_empty() {
    let Some(mut redis) = Redis::start_for_test(None) else {
        return;
    };
    let addr = redis.addr;
    let mut before = redis.connect();
    before.cmd(&["SET", "k", "v"]).unwrap();
    redis.stop();
    assert!(!redis.is_running());
    assert!(
        TcpStream::connect(addr).is_err(),
        "stopped, yet {addr} accepts"
    );
    assert!(
        before.cmd(&["PING"]).is_err(),
        "an old connection outlived the stop"
    );
    redis.restart().unwrap();
    assert!(redis.is_running());
    assert_eq!(redis.addr, addr);
    let mut after = redis.connect();
    assert_eq!(
        after.cmd(&["GET", "k"]).unwrap(),
        Reply::Bulk(None),
        "persisted"
    );
    // A restart of a running server works too.
    redis.restart().unwrap();
    assert_eq!(redis.connect().cmd(&["PING"]).unwrap().text(), Some("PONG"));
}

#[test]
fn drop_ends_the_process() {
    let Some(redis) = Redis::start_for_test(None) else {
        return;
    };
    let pid = redis.pid().unwrap();
    let addr = redis.addr;
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(redis);
    // Reaped by the drop: no zombie left under this pid (it could be reused, but not
    // this soon by another redis-server).
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert!(
        !comm.starts_with("redis-server"),
        "redis-server {pid} still there"
    );
    assert!(TcpStream::connect(addr).is_err());
}
