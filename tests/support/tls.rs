//! A throwaway PKI made at test time with `rcgen` (nothing secret is committed), written as
//! PEM files into a [`TempDir`], and the Mosquitto configuration lines that use it: a TLS
//! listener, mutual TLS, a password file made with `mosquitto_passwd`, an ACL file, and a
//! second, plain listener for the test's [`Subscriber`](super::Subscriber).
//!
//! Mosquitto options that follow a `listener` line belong to that listener, so a
//! configuration is built as: the TLS lines of the broker's own first listener
//! ([`Pki::tls_listener`], [`Pki::mutual_tls_listener`]), then [`plain_listener`], then
//! global options ([`auth_conf`], [`acl_conf`]), which apply to every listener.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};

use super::{TempDir, find_on_path};

/// Common name of [`Pki::client`], which Mosquitto's `use_identity_as_username` makes the
/// user name.
pub const CLIENT_CN: &str = "mps-test-client";
/// The only name [`Pki::other_name_server`] is valid for.
pub const OTHER_NAME: &str = "broker.example";

/// A certificate (chain) file and its private key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate authority: its certificate file and what it needs to sign more.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_file: PathBuf,
}

/// The throwaway PKI of one test, its files in a directory removed on drop.
pub struct Pki {
    ca: Authority,
    other_ca: Authority,
    /// The CA that signed every certificate below except [`Pki::untrusted_client`].
    pub ca_file: PathBuf,
    /// A second CA that signed nothing the brokers use: trusting only it is an unknown issuer.
    pub other_ca_file: PathBuf,
    /// Server certificate for `127.0.0.1` (IP SAN) and `localhost`, signed by the CA.
    pub server: CertFiles,
    /// As [`Pki::server`], but its validity ended in 2001.
    pub expired_server: CertFiles,
    /// Server certificate for [`OTHER_NAME`] only, signed by the CA.
    pub other_name_server: CertFiles,
    /// Client certificate with common name [`CLIENT_CN`], signed by the CA.
    pub client: CertFiles,
    /// Client certificate signed by the other CA, which brokers do not trust.
    pub untrusted_client: CertFiles,
    // Last field: removed after everything else.
    dir: TempDir,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir.path())
            .field("ca_file", &self.ca_file)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Makes the CAs and certificates (ECDSA P-256 keys, PKCS#8 PEM) in a fresh directory.
    pub fn new() -> Pki {
        let dir = TempDir::new("mps-mqtt-events-pki");
        let ca = Authority::new(dir.path(), "ca", "mps-mqtt-events test CA");
        let other_ca = Authority::new(dir.path(), "other-ca", "mps-mqtt-events unrelated CA");
        let valid = |names: &[&str]| server_params(names, 2020, 2099);
        let server = ca.issue(dir.path(), "server", &valid(&["127.0.0.1", "localhost"]));
        let expired_server = ca.issue(
            dir.path(),
            "expired-server",
            &server_params(&["127.0.0.1", "localhost"], 2000, 2001),
        );
        let other_name_server = ca.issue(dir.path(), "other-name-server", &valid(&[OTHER_NAME]));
        let client = ca.issue(dir.path(), "client", &client_params(CLIENT_CN));
        let untrusted_client =
            other_ca.issue(dir.path(), "untrusted-client", &client_params(CLIENT_CN));
        Pki {
            ca_file: ca.cert_file.clone(),
            other_ca_file: other_ca.cert_file.clone(),
            ca,
            other_ca,
            server,
            expired_server,
            other_name_server,
            client,
            untrusted_client,
            dir,
        }
    }

    /// A client certificate signed by the CA whose validity starts in `from_year` and ends
    /// in `to_year` (e.g. expired, or not valid yet).
    pub fn client_valid_between(&self, name: &str, from_year: i32, to_year: i32) -> CertFiles {
        let mut params = client_params(CLIENT_CN);
        params.not_before = date_time_ymd(from_year, 1, 1);
        params.not_after = date_time_ymd(to_year, 1, 1);
        self.ca.issue(self.dir.path(), name, &params)
    }

    /// The directory holding the files, for more files of the test (password, ACL).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A new client certificate with common name `cn`, signed by the CA, in files named
    /// after `name`.
    pub fn issue_client(&self, name: &str, cn: &str) -> CertFiles {
        self.ca.issue(self.dir.path(), name, &client_params(cn))
    }

    /// Replaces the contents of `files` with a new client certificate for `cn` and a new key,
    /// as a renewal on disk does (each file written whole, then renamed into place).
    pub fn renew_client(&self, files: &CertFiles, cn: &str) {
        let key = KeyPair::generate().expect("generate a key pair");
        let cert = client_params(cn)
            .signed_by(&key, &self.ca.issuer)
            .expect("sign the renewed client certificate");
        replace(&files.cert, &cert.pem());
        replace(&files.key, &key.serialize_pem());
    }

    /// A client certificate for `cn` signed by the other CA (unused by the tests so far, kept
    /// for symmetry with [`Pki::issue_client`]).
    pub fn issue_untrusted_client(&self, name: &str, cn: &str) -> CertFiles {
        self.other_ca
            .issue(self.dir.path(), name, &client_params(cn))
    }

    /// A client certificate for `cn` whose key file is in SEC1 form (`EC PRIVATE KEY`, as
    /// `openssl ec` writes it) instead of PKCS#8.
    pub fn client_with_sec1_key(&self, name: &str, cn: &str) -> CertFiles {
        let files = self.issue_client(name, cn);
        let key = KeyPair::from_pem(&read(&files.key)).expect("parse the PKCS#8 key");
        let sec1 = pkcs8_p256_to_sec1(key.serialized_der());
        write(&files.key, &pem("EC PRIVATE KEY", &sec1));
        files
    }

    /// A client certificate for `cn` with an RSA key in PKCS#1 form (`RSA PRIVATE KEY`),
    /// made with the `openssl` command (ring cannot generate RSA keys). `None` after printing
    /// `skipped: ...` when `openssl` is not installed.
    pub fn rsa_client_with_pkcs1_key(&self, name: &str, cn: &str) -> Option<CertFiles> {
        let Some(openssl) = find_on_path("openssl") else {
            eprintln!("skipped: no openssl command to make an RSA key in PKCS#1 form");
            return None;
        };
        let files = CertFiles {
            cert: self.dir.path().join(format!("{name}.pem")),
            key: self.dir.path().join(format!("{name}-key.pem")),
        };
        let pkcs8 = self.dir.path().join(format!("{name}-key.pkcs8.pem"));
        run(Command::new(&openssl)
            .args(["genrsa", "-traditional", "-out"])
            .arg(&files.key)
            .arg("2048"));
        run(Command::new(&openssl)
            .args(["pkcs8", "-topk8", "-nocrypt", "-in"])
            .arg(&files.key)
            .arg("-out")
            .arg(&pkcs8));
        let key = KeyPair::from_pem(&read(&pkcs8)).expect("parse the RSA key");
        let _ = fs::remove_file(&pkcs8);
        let cert = client_params(cn)
            .signed_by(&key, &self.ca.issuer)
            .expect("sign the RSA client certificate");
        write(&files.cert, &cert.pem());
        assert!(read(&files.key).starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        Some(files)
    }

    /// A client certificate for `cn` whose certificate file is a chain: the certificate, then
    /// the CA's.
    pub fn client_with_chain(&self, name: &str, cn: &str) -> CertFiles {
        let files = self.issue_client(name, cn);
        let chain = format!("{}{}", read(&files.cert), read(&self.ca_file));
        write(&files.cert, &chain);
        files
    }

    /// A file in the PKI's directory holding `contents`.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        write(&path, contents);
        path
    }

    /// Per-listener lines for TLS with `server`'s certificate and the CA as `cafile`.
    pub fn tls_listener(&self, server: &CertFiles) -> String {
        format!(
            "cafile {}\ncertfile {}\nkeyfile {}\n",
            self.ca_file.display(),
            server.cert.display(),
            server.key.display()
        )
    }

    /// Per-listener lines for mutual TLS: [`Pki::tls_listener`] with [`Pki::server`], and a
    /// client certificate signed by the CA required; with `identity_as_username` its common
    /// name becomes the client's user name (for ACLs, and the broker log's `u'<cn>'`).
    pub fn mutual_tls_listener(&self, identity_as_username: bool) -> String {
        let mut conf = self.tls_listener(&self.server);
        conf.push_str("require_certificate true\n");
        if identity_as_username {
            conf.push_str("use_identity_as_username true\n");
        }
        conf
    }
}

impl Authority {
    fn new(dir: &Path, name: &str, common_name: &str) -> Authority {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2099, 1, 1);
        let key = KeyPair::generate().expect("generate a CA key pair");
        let cert = params.self_signed(&key).expect("self-sign the CA");
        let cert_file = dir.join(format!("{name}.pem"));
        write(&cert_file, &cert.pem());
        Authority {
            issuer: Issuer::new(params, key),
            cert_file,
        }
    }

    /// Signs a new key pair's certificate with `params`; writes `<name>.pem` (the certificate)
    /// and `<name>-key.pem` (its PKCS#8 key).
    fn issue(&self, dir: &Path, name: &str, params: &CertificateParams) -> CertFiles {
        let key = KeyPair::generate().expect("generate a key pair");
        let cert = params
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|e| panic!("sign {name}: {e}"));
        let files = CertFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        write(&files.cert, &cert.pem());
        write(&files.key, &key.serialize_pem());
        files
    }
}

fn server_params(names: &[&str], from_year: i32, to_year: i32) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names.clone()).expect("valid subject names");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, &names[0]);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = date_time_ymd(from_year, 1, 1);
    params.not_after = date_time_ymd(to_year, 1, 1);
    params
}

fn client_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2099, 1, 1);
    params
}

fn write(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Writes `contents` to a sibling file, then renames it over `path`, so a reader sees the
/// old file or the new one, never half of one.
fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("new");
    write(&tmp, contents);
    fs::rename(&tmp, path)
        .unwrap_or_else(|e| panic!("cannot rename {} into place: {e}", tmp.display()));
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Runs a command that must succeed.
fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// DER and PEM, just enough to rewrite a P-256 key from PKCS#8 into SEC1

/// The parameters of a SEC1 key: `[0] { OID prime256v1 }`.
const P256_PARAMETERS: [u8; 12] = [
    0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
];

/// Splits one DER element off `der`: (the whole element, its contents, the rest).
fn der_element(der: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let first = der[1];
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        let len = der[2..2 + n]
            .iter()
            .fold(0, |len, byte| (len << 8) | usize::from(*byte));
        (len, 2 + n)
    };
    (
        &der[..header + len],
        &der[header..header + len],
        &der[header + len..],
    )
}

/// A DER element with `tag` around `contents`.
fn der_wrap(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(u8::try_from(len).expect("short length"));
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | u8::try_from(bytes.len()).expect("length of length"));
        out.extend(bytes);
    }
    out.extend_from_slice(contents);
    out
}

/// The SEC1 `ECPrivateKey` inside a PKCS#8 P-256 key, with the curve parameters added as
/// OpenSSL writes them.
fn pkcs8_p256_to_sec1(pkcs8: &[u8]) -> Vec<u8> {
    let (_, info, _) = der_element(pkcs8); // PrivateKeyInfo
    let (_, _, info) = der_element(info); // version
    let (_, _, info) = der_element(info); // algorithm
    let (_, ec_private_key, _) = der_element(info); // privateKey OCTET STRING
    let (_, fields, _) = der_element(ec_private_key); // ECPrivateKey SEQUENCE
    let (version, rest) = {
        let (whole, _, rest) = der_element(fields);
        (whole, rest)
    };
    let (private, rest) = {
        let (whole, _, rest) = der_element(rest);
        (whole, rest)
    };
    let rest = if rest.first() == Some(&0xa0) {
        der_element(rest).2 // parameters already there: replaced below
    } else {
        rest
    };
    let mut contents = Vec::new();
    contents.extend_from_slice(version);
    contents.extend_from_slice(private);
    contents.extend_from_slice(&P256_PARAMETERS);
    contents.extend_from_slice(rest); // [1] publicKey
    der_wrap(0x30, &contents)
}

/// PEM text of `der` with `label`, 64 base64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut base64 = String::new();
    for chunk in der.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                base64.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                base64.push('=');
            }
        }
    }
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in base64.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

// ---------------------------------------------------------------------------------------------
// Mosquitto configuration

/// A second listener, plain MQTT on `port`: every per-listener line before it belongs to the
/// broker's first listener, and the test's subscriber connects here.
pub fn plain_listener(port: u16) -> String {
    format!("listener {port} 127.0.0.1\n")
}

/// A password file in `dir` holding `users` (user name, password), made with
/// `mosquitto_passwd -b`.
///
/// # Panics
///
/// When `mosquitto_passwd` is not installed or fails.
pub fn password_file(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let binary = find_on_path("mosquitto_passwd")
        .expect("mosquitto_passwd not found (it comes with the mosquitto package)");
    let path = dir.join(format!("passwd-{}", super::unique_suffix()));
    write(&path, "");
    for (user, password) in users {
        let out = Command::new(&binary)
            .arg("-b")
            .arg(&path)
            .arg(user)
            .arg(password)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        assert!(
            out.status.success(),
            "mosquitto_passwd -b {} {user}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    path
}

/// Global lines: only the users of `password_file` may connect, on every listener.
pub fn auth_conf(password_file: &Path) -> String {
    format!(
        "password_file {}\nallow_anonymous false\n",
        password_file.display()
    )
}

/// An ACL file in `dir` with `rules` (Mosquitto's `acl_file` syntax: rules before the first
/// `user` line apply to anonymous clients).
pub fn acl_file(dir: &Path, rules: &str) -> PathBuf {
    let path = dir.join(format!("acl-{}", super::unique_suffix()));
    write(&path, rules);
    path
}

/// Global line: `acl_file`, with Mosquitto's debug log so denied publishes show in it.
pub fn acl_conf(acl_file: &Path) -> String {
    format!("acl_file {}\nlog_type debug\n", acl_file.display())
}
