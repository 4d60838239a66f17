//! TLS for `mqtts://` addresses (cargo feature `tls`): the rustls client configuration from
//! the settings' PEM files, read afresh for every connection so that renewed certificates are
//! used without a restart, and the meaning of handshake failures for an operator.
//!
//! The crypto provider is *ring*: it builds with a C compiler alone (aws-lc-rs needs CMake or
//! a long build), and covers what MQTT brokers offer (TLS 1.2 and 1.3, ECDSA, RSA, Ed25519).

use std::io;
use std::sync::Arc;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::{
    self, AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};

use crate::config::{NamedPath, TlsSettings};

/// A settings file that cannot be used, or no trusted roots at all.
#[derive(Debug)]
pub(crate) struct TlsFileError {
    /// The variable or setter that named the file; `None` for the platform's roots.
    pub(crate) file: Option<NamedPath>,
    pub(crate) reason: String,
}

impl std::fmt::Display for TlsFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{} {:?}: {}", file.name, file.path, self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

fn file_error(file: &NamedPath, reason: String) -> TlsFileError {
    TlsFileError {
        file: Some(file.clone()),
        reason,
    }
}

/// What is wrong with a PEM file, in words.
fn pem_reason(error: &pem::Error, what: &str) -> String {
    match error {
        pem::Error::Io(e) => format!("cannot read the file: {e}"),
        pem::Error::NoItemsFound => format!("no {what} in it (expected PEM)"),
        other => format!("not valid PEM: {other}"),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn certificates(
    file: &NamedPath,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let reason = |e: &pem::Error| pem_reason(e, what);
    let certs = CertificateDer::pem_file_iter(&file.path)
        .map_err(|e| file_error(file, reason(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(file, reason(&e)))?;
    if certs.is_empty() {
        return Err(file_error(file, reason(&pem::Error::NoItemsFound)));
    }
    Ok(certs)
}

fn roots(ca_file: Option<&NamedPath>) -> Result<RootCertStore, TlsFileError> {
    let mut store = RootCertStore::empty();
    if let Some(file) = ca_file {
        for cert in certificates(file, "CA certificate")? {
            store
                .add(cert)
                .map_err(|e| file_error(file, format!("not a usable CA certificate: {e}")))?;
        }
        return Ok(store);
    }
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = store.add_parsable_certificates(native.certs);
    if added == 0 {
        return Err(TlsFileError {
            file: None,
            reason: "no trusted root certificates: the platform has none (install the \
                     ca-certificates package) and MPS_MQTT_CA_FILE is unset"
                .to_owned(),
        });
    }
    Ok(store)
}

/// The client configuration for `settings`, from the files as they are now.
pub(crate) fn client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, TlsFileError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsFileError {
            file: None,
            reason: format!("no TLS protocol version available: {e}"),
        })?;
    let builder = if settings.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        builder.with_root_certificates(roots(settings.ca_file.as_ref())?)
    };
    let mut config = match &settings.client {
        None => builder.with_no_client_auth(),
        Some((cert_file, key_file)) => {
            let chain = certificates(cert_file, "certificate")?;
            check_validity(cert_file, &chain[0])?;
            let key = PrivateKeyDer::from_pem_file(&key_file.path)
                .map_err(|e| file_error(key_file, pem_reason(&e, "private key")))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                let reason = match e {
                    rustls::Error::InconsistentKeys(_) => format!(
                        "the key does not match the certificate in {} {:?}",
                        cert_file.name, cert_file.path
                    ),
                    other => format!("not a usable private key: {other}"),
                };
                file_error(key_file, reason)
            })?
        }
    };
    config.alpn_protocols.clone_from(&settings.alpn);
    Ok(Arc::new(config))
}

/// A client certificate outside its validity period would be refused by every broker: say so
/// before connecting, with the dates.
fn check_validity(file: &NamedPath, cert: &CertificateDer<'_>) -> Result<(), TlsFileError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| file_error(file, format!("not a readable X.509 certificate: {e}")))?;
    let validity = parsed.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now < validity.not_before {
        let from = validity.not_before;
        return Err(file_error(
            file,
            format!("the certificate is not valid before {from}"),
        ));
    }
    if now > validity.not_after {
        let until = validity.not_after;
        return Err(file_error(
            file,
            format!("the certificate expired on {until}"),
        ));
    }
    Ok(())
}

/// The server name to verify: the host of the address, without IPv6 brackets.
pub(crate) fn server_name(host: &str) -> io::Result<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host:?}: {e}")))
}

/// What a failed TLS handshake means, and what to do about it.
pub(crate) fn handshake_failure(error: &io::Error, host: &str) -> String {
    let Some(tls) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return match error.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                "the broker closed the connection during the TLS handshake (does this port \
                 speak TLS? does the broker require a client certificate?)"
                    .to_owned()
            }
            _ => format!("TLS handshake failed: {error}"),
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => "the broker's certificate is not trusted \
                (unknown issuer): set MPS_MQTT_CA_FILE to the CA that signed it"
                .to_owned(),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the broker's certificate is not valid for the name {host} (name \
                     mismatch): connect by a name the certificate lists"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the broker's certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the broker's certificate is not valid yet (check the clocks)".to_owned()
            }
            other => format!("the broker's certificate was rejected: {other:?}"),
        },
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::CertificateRequired
            | AlertDescription::HandshakeFailure
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown),
        ) => format!(
            "the broker refused the TLS handshake ({alert:?}): it requires a client \
             certificate it trusts (set MPS_MQTT_CLIENT_CERT_FILE and MPS_MQTT_CLIENT_KEY_FILE)"
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "the broker did not answer in TLS: is this a plain MQTT port? then use mqtt://"
                .to_owned()
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

/// The meaning of a TLS alert the broker sent after the handshake, if `error` is one.
pub(crate) fn alert_reason(error: &io::Error) -> Option<String> {
    let tls = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    matches!(tls, rustls::Error::AlertReceived(_)).then(|| handshake_failure(error, ""))
}

/// Accepts any server certificate: `MPS_MQTT_TLS_INSECURE=1`, for test brokers only.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
