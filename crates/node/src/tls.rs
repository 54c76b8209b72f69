//! TLS between paired nodes: each node serves a self-signed certificate, and the client side
//! pins the peer's certificate by the SHA-256 named in the signed agreement. No CA, no trust on
//! first use. rustls with the `ring` provider.

use std::sync::Arc;

use crate::error::{Code, OrCode, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side: serve `cert_der` with `key_der` (PKCS#8).
pub fn server_config(cert_der: &[u8], key_der: &[u8]) -> Result<rustls::ServerConfig> {
    let cert = CertificateDer::from(cert_der.to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.to_vec()));
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .or_code(Code::Internal, || "TLS protocol versions".into())?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .or_code(Code::BadData, || {
            "loading the node's TLS certificate".into()
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The client side: accept exactly the certificate whose SHA-256 is `pinned_sha256`.
pub fn pinned_client_config(pinned_sha256: [u8; 32]) -> Result<rustls::ClientConfig> {
    let provider = provider();
    let verifier = PinnedCert {
        pinned_sha256,
        algorithms: provider.signature_verification_algorithms,
    };
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .or_code(Code::Internal, || "TLS protocol versions".into())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Verifies the server by the SHA-256 of its end-entity certificate (pinning), and the
/// handshake signatures with the provider's algorithms as usual.
#[derive(Debug)]
struct PinnedCert {
    pinned_sha256: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if seen == self.pinned_sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "peer certificate {} is not the one pinned by the agreement ({})",
                hex::encode(seen),
                hex::encode(self.pinned_sha256)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
