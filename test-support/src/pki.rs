//! Certificates made at test time with rcgen: a test CA and leaves signed by it (good for
//! localhost and 127.0.0.1, expired, wrong name), a self-signed leaf, and a leaf from a CA
//! nobody trusts. Also a rustls server config for a leaf.
//!
//! Owns: one set of certificates per test process, made on first use ([`pki`]). Shared by the
//! TLS integration tests, the CLI tests, the benchmarks and parafetch's in-memory TLS unit
//! tests. Must not: read or write files (nginx gets PEM strings, and writes them itself).

use std::sync::{Arc, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    date_time_ymd,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A server certificate and its key.
pub struct Leaf {
    /// The leaf, then its issuer (when there is one besides itself).
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// The leaf and its issuer, PEM (for servers like nginx).
    pub chain_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
}

impl Leaf {
    /// The private key, for a rustls server.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// The test CA and every leaf the tests need.
pub struct Pki {
    /// The test CA's certificate, PEM: the root a client trusts to accept [`Pki::good`].
    pub ca_pem: String,
    /// Signed by the test CA, valid now, for `localhost`, `127.0.0.1` and `h0.test` ..
    /// `h7.test`.
    pub good: Leaf,
    /// Signed by the test CA, for the right names, but expired.
    pub expired: Leaf,
    /// Signed by the test CA, valid now, for another name.
    pub wrong_name: Leaf,
    /// Self-signed.
    pub self_signed: Leaf,
    /// Signed by a CA nobody trusts.
    pub untrusted: Leaf,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, CertificateDer<'static>, String) {
    let key = KeyPair::generate().expect("ca key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).expect("ca cert");
    let pem = cert.pem();
    (params, key, cert.der().clone(), pem)
}

fn leaf(
    names: &[&str],
    issuer: Option<(&CertificateParams, &KeyPair, &CertificateDer<'static>, &str)>,
    expired: bool,
) -> Leaf {
    let key = KeyPair::generate().expect("leaf key");
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, names[0]);
    if expired {
        params.not_before = date_time_ymd(2001, 1, 1);
        params.not_after = date_time_ymd(2002, 1, 1);
    }
    let (cert, chain_extra, extra_pem) = match issuer {
        Some((ca_params, ca_key, ca_der, ca_pem)) => {
            let issuer = Issuer::from_params(ca_params, ca_key);
            (
                params.signed_by(&key, &issuer).expect("sign leaf"),
                vec![ca_der.clone()],
                ca_pem.to_owned(),
            )
        }
        None => (
            params.self_signed(&key).expect("self-sign leaf"),
            vec![],
            String::new(),
        ),
    };
    let mut chain = vec![cert.der().clone()];
    chain.extend(chain_extra);
    Leaf {
        chain,
        key_der: key.serialize_der(),
        chain_pem: format!("{}{}", cert.pem(), extra_pem),
        key_pem: key.serialize_pem(),
    }
}

/// The test PKI, made once per test binary.
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let (ca_params, ca_key, ca_der, ca_pem) = ca("parafetch test CA");
        let (other_params, other_key, other_der, _) = ca("untrusted CA");
        let signed = Some((&ca_params, &ca_key, &ca_der, ca_pem.as_str()));
        Pki {
            // h0.test .. h7.test: the benchmark's names for one server, so that requests
            // spread over a fetcher's loops.
            good: leaf(
                &[
                    "localhost",
                    "127.0.0.1",
                    "h0.test",
                    "h1.test",
                    "h2.test",
                    "h3.test",
                    "h4.test",
                    "h5.test",
                    "h6.test",
                    "h7.test",
                ],
                signed,
                false,
            ),
            expired: leaf(&["localhost", "127.0.0.1"], signed, true),
            wrong_name: leaf(&["wrong.example"], signed, false),
            self_signed: leaf(&["localhost", "127.0.0.1"], None, false),
            untrusted: leaf(
                &["localhost", "127.0.0.1"],
                Some((&other_params, &other_key, &other_der, "")),
                false,
            ),
            ca_pem,
        }
    })
}

/// A rustls server config presenting `leaf` (ring provider, ALPN http/1.1).
pub fn server_config(leaf: &Leaf) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(leaf.chain.clone(), leaf.key())
        .expect("server cert");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}
