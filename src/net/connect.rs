//! From a [`Target`] to a connected stream: name resolution, the address check, TCP, TLS.

use super::address::is_forbidden_address;
use super::{Error, Reach, Target};
use rustls_pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Resolves the target and connects to the first address that passes the SSRF check and
/// accepts the connection; the connection goes to a checked address, so a second DNS answer
/// cannot swap one in.
///
/// A pinned address is the operator's own (like curl `--resolve`) and is not second-guessed;
/// every address from DNS or from the URL itself is.
pub(super) async fn tcp(target: &Target, reach: Reach) -> Result<TcpStream, Error> {
    let candidates: Vec<SocketAddr> = match reach.pinned {
        Some(pinned) => vec![pinned],
        None => {
            let found: Vec<SocketAddr> = match target.literal {
                Some(ip) => vec![SocketAddr::new(ip, target.port)],
                None => tokio::net::lookup_host((target.host.as_str(), target.port))
                    .await
                    .map_err(|_| Error::Dns)?
                    .collect(),
            };
            if found.is_empty() {
                return Err(Error::Dns);
            }
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| reach.allow_private_addresses || !is_forbidden_address(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Error::ForbiddenAddress);
            }
            allowed
        }
    };
    for addr in candidates {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Small request, small answer: don't wait to coalesce segments.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => {
                tracing::debug!(host = %target.host, %addr, error = %e, "outbound connect failed")
            }
        }
    }
    Err(Error::Connect)
}

/// The TLS handshake over `tcp`, SNI = the target's host (or its IP literal).
pub(super) async fn tls(
    connector: &TlsConnector,
    target: &Target,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, Error> {
    let name = match target.literal {
        Some(ip) => ServerName::IpAddress(ip.into()),
        // A host the URL parser took but rustls will not name: no handshake possible.
        None => ServerName::try_from(target.host.clone()).map_err(|_| Error::Tls)?,
    };
    connector.connect(name, tcp).await.map_err(|_| Error::Tls)
}

/// The client TLS setup: webpki roots, aws-lc-rs, HTTP/1.1 by ALPN.
pub(super) fn connector() -> Result<TlsConnector, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS client setup failed: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::Url;

    fn target(url: &str) -> Target {
        Target::of(&Url::parse(url).expect("url"), true).expect("target")
    }

    fn reach(allow_private_addresses: bool, pinned: Option<SocketAddr>) -> Reach {
        Reach {
            allow_private_addresses,
            pinned,
        }
    }

    #[tokio::test]
    async fn private_addresses_are_refused_unless_allowed_or_pinned() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let port = addr.port();
        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            format!("http://localhost:{port}/"),
            format!("http://LocalHost.:{port}/"),
        ] {
            let got = tcp(&target(&url), reach(false, None)).await;
            assert_eq!(got.err(), Some(Error::ForbiddenAddress), "{url}");
        }
        // Control: the same address is reachable when private addresses are allowed...
        let url = format!("http://127.0.0.1:{port}/");
        assert!(tcp(&target(&url), reach(true, None)).await.is_ok());
        // ...or when the operator pinned the host to it.
        let pinned = target("http://pinned.test/");
        assert!(tcp(&pinned, reach(false, Some(addr))).await.is_ok());
    }
}
