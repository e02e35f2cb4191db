//! TLS for our own binlog client ([`crate::wire`]), with the certificate checks mysql_async
//! makes for the same URL settings: `required` accepts any certificate, `verify-ca` checks
//! the chain (against `ssl-ca`, and the public web roots) but not the host name,
//! `verify-identity` checks both.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject as _};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::MySqlConfig;
use crate::config::SslMode;

fn invalid(what: String) -> mysql_async::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what).into()
}

/// The CA certificates of `ssl-ca` (PEM, or one DER certificate).
async fn load_ca(
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, mysql_async::Error> {
    let data = tokio::fs::read(path).await?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(format!("{} is not a PEM certificate: {e}", path.display())))?;
    if certs.is_empty() && !data.is_empty() {
        return Ok(vec![CertificateDer::from(data)]);
    }
    Ok(certs)
}

/// Secures `tcp` as `config.ssl_mode` says.
pub(crate) async fn secure(
    config: &MySqlConfig,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, mysql_async::Error> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = &config.ssl_ca {
        for cert in load_ca(ca).await? {
            roots.add(cert)?;
        }
    }
    let roots = Arc::new(roots);
    let webpki = WebPkiServerVerifier::builder(roots.clone())
        .build()
        .map_err(|e| invalid(format!("TLS setup failed: {e}")))?;
    let mut tls = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.dangerous().set_certificate_verifier(Arc::new(Verifier {
        accept_any: config.ssl_mode == SslMode::Required,
        skip_name: config.ssl_mode != SslMode::VerifyIdentity,
        webpki,
    }));
    let name = ServerName::try_from(config.host.clone())
        .map_err(|e| invalid(format!("`{}` is not a host name for TLS: {e}", config.host)))?;
    Ok(TlsConnector::from(Arc::new(tls)).connect(name, tcp).await?)
}

#[derive(Debug)]
struct Verifier {
    accept_any: bool,
    skip_name: bool,
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.accept_any {
            return Ok(ServerCertVerified::assertion());
        }
        match (self.webpki).verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
                if self.skip_name =>
            {
                Ok(ServerCertVerified::assertion())
            }
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) if self.skip_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
