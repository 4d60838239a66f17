//! `BENCH_MODE=tls` (with `--features tls`): the layer publishing over `mqtts://` against the
//! same layer over `mqtt://`, alternating, to show that TLS keeps writes coalesced: CPU per
//! event over TLS should stay close to plain, not return to one write per event.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A CA and a server certificate for 127.0.0.1, written as PEM into `dir`; returns the
/// Mosquitto listener lines for `port` and the CA file.
pub(crate) fn tls_listener(dir: &Path, port: u16) -> (String, PathBuf) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("self-signed CA");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("server params");
    let cert = server.signed_by(&key, &issuer).expect("server certificate");
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write PEM");
        path
    };
    let ca_file = write("ca.pem", ca_cert.pem());
    let cert_file = write("server.pem", cert.pem());
    let key_file = write("server-key.pem", key.serialize_pem());
    let lines = format!(
        "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
        ca_file.display(),
        cert_file.display(),
        key_file.display()
    );
    (lines, ca_file)
}
