//! `/etc/hosts`: static names consulted before the DNS.
//!
//! Owns the file's syntax (`hosts(5)`: an address, then a canonical name and aliases) and the
//! lookup by name. Only [`Hosts::system`] reads a file; parsing never fails, a line it does
//! not understand is skipped.

use std::collections::HashMap;
use std::net::IpAddr;

use super::name;

/// Where [`Hosts::system`] reads from.
pub const HOSTS_PATH: &str = "/etc/hosts";

/// The entries of a hosts file, by name.
#[derive(Clone, Debug, Default)]
pub struct Hosts {
    /// Lowercase name without a trailing dot -> its addresses in file order, no duplicates.
    by_name: HashMap<String, Vec<IpAddr>>,
}

/// The key a name is stored and looked up under.
fn key(name: &str) -> String {
    name::strip_root(name).to_ascii_lowercase()
}

impl Hosts {
    /// Parses the text of a hosts file. Each line is an IPv4 or IPv6 address followed by one
    /// or more names, separated by spaces or tabs; `#` starts a comment anywhere. Lines whose
    /// first word is not an address are skipped, and so are addresses with a `%scope` (an
    /// [`IpAddr`] cannot carry the scope, and without it a link-local address would be
    /// ambiguous). A name listed on several lines collects all their addresses, IPv4 and
    /// IPv6 together, in file order.
    pub fn parse(text: &str) -> Hosts {
        let mut by_name: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for line in text.lines() {
            let line = line.split_once('#').map_or(line, |(before, _)| before);
            let mut words = line.split_ascii_whitespace();
            let Some(Ok(addr)) = words.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            for name in words {
                let name = key(name);
                if name.is_empty() {
                    continue;
                }
                let addrs = by_name.entry(name).or_default();
                if !addrs.contains(&addr) {
                    addrs.push(addr);
                }
            }
        }
        Hosts { by_name }
    }

    /// Reads and parses [`HOSTS_PATH`]. A missing or unreadable file gives no entries. This
    /// is blocking file I/O: call it once, when the resolver is built.
    pub fn system() -> Hosts {
        match std::fs::read(HOSTS_PATH) {
            Ok(bytes) => Hosts::parse(&String::from_utf8_lossy(&bytes)),
            Err(_) => Hosts::default(),
        }
    }

    /// The addresses listed for `name` (ASCII case and one trailing dot ignored), in file
    /// order, IPv4 and IPv6 together; `None` when the file does not list it.
    pub fn lookup(&self, name: &str) -> Option<&[IpAddr]> {
        self.by_name.get(&key(name)).map(Vec::as_slice)
    }

    /// How many distinct names the file lists.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether the file lists no names.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    const TYPICAL: &str = "\
127.0.0.1\tlocalhost
127.0.1.1\tbuild-box.example.org\tbuild-box

# The following lines are desirable for IPv6 capable hosts
::1     ip6-localhost ip6-loopback localhost
fe00::0 ip6-localnet
ff02::1 ip6-allnodes
";

    #[test]
    fn a_typical_file() {
        let hosts = Hosts::parse(TYPICAL);
        assert_eq!(
            hosts.lookup("localhost").unwrap(),
            ips(&["127.0.0.1", "::1"])
        );
        assert_eq!(hosts.lookup("build-box").unwrap(), ips(&["127.0.1.1"]));
        assert_eq!(
            hosts.lookup("build-box.example.org").unwrap(),
            ips(&["127.0.1.1"])
        );
        assert_eq!(hosts.lookup("ip6-loopback").unwrap(), ips(&["::1"]));
        assert_eq!(hosts.lookup("ip6-allnodes").unwrap(), ips(&["ff02::1"]));
        assert_eq!(hosts.lookup("example.org"), None);
        assert_eq!(hosts.len(), 7);
    }

    #[test]
    fn lookup_ignores_case_and_one_trailing_dot() {
        let hosts = Hosts::parse("192.0.2.1 Mixed.Example.\n");
        for name in [
            "mixed.example",
            "MIXED.EXAMPLE",
            "Mixed.Example.",
            "mixed.example.",
        ] {
            assert_eq!(hosts.lookup(name).unwrap(), ips(&["192.0.2.1"]), "{name}");
        }
        assert_eq!(hosts.lookup("mixed.example.."), None);
    }

    #[test]
    fn odd_whitespace_comments_and_bad_lines() {
        let hosts = Hosts::parse(
            "  192.0.2.1\t\t a   b\t# c\r\n\
             #192.0.2.2 commented\n\
             192.0.2.3#glued-comment\n\
             not-an-ip d\n\
             192.0.2.300 e\n\
             fe80::1%eth0 f\n\
             192.0.2.4\n\
             \n\
             \t\n\
             2001:db8::1 a\n",
        );
        assert_eq!(
            hosts.lookup("a").unwrap(),
            ips(&["192.0.2.1", "2001:db8::1"])
        );
        assert_eq!(hosts.lookup("b").unwrap(), ips(&["192.0.2.1"]));
        for missing in [
            "c",
            "commented",
            "glued-comment",
            "d",
            "e",
            "f",
            "192.0.2.4",
        ] {
            assert_eq!(hosts.lookup(missing), None, "{missing}");
        }
        assert_eq!(hosts.len(), 2);
    }

    #[test]
    fn repeated_lines_keep_file_order_without_duplicates() {
        let hosts =
            Hosts::parse("::1 svc\n192.0.2.1 svc\n192.0.2.1 svc other\n192.0.2.2 SVC svc\n");
        assert_eq!(
            hosts.lookup("svc").unwrap(),
            ips(&["::1", "192.0.2.1", "192.0.2.2"])
        );
    }

    #[test]
    fn empty_file_lists_nothing() {
        let hosts = Hosts::parse("");
        assert!(hosts.is_empty());
        assert_eq!(hosts.lookup("localhost"), None);
    }
}
