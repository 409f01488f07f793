//! The client against TLS servers that are not usable Redfish services: each gets a one-line
//! error and its own exit code, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use support::*;

/// A TLS server on loopback that answers every request with `response`; returns its URL and
/// certificate fingerprint.
async fn fixed_server(response: Vec<u8>) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let fingerprint = {
        use sha2::Digest;
        sha2::Sha256::digest(cert.der())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let response = Arc::new(response);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let response = response.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buffer = vec![0u8; 8192];
                let mut request = Vec::new();
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let _ = tls.write_all(&response).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (url, fingerprint)
}

fn http_response(content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}

async fn health_exit(response: Vec<u8>) -> std::process::Output {
    let (url, fingerprint) = fixed_server(response).await;
    let cli = Cli::new();
    cli.add("x", &url, &fingerprint).await;
    cli.run(&["health", "x"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_is_not_redfish() {
    let output = health_exit(http_response(
        "text/html",
        b"<html><body>Login</body></html>",
    ))
    .await;
    assert_code(&output, 7);
    assert!(stderr(&output).contains("Redfish"), "{}", stderr(&output));
    assert_eq!(
        stderr(&output).trim().lines().count(),
        1,
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_exits_7() {
    let output = health_exit(http_response("application/json", b"{\"RedfishVersion\": ")).await;
    assert_code(&output, 7);
    assert_eq!(
        stderr(&output).trim().lines().count(),
        1,
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_response_exits_7() {
    let mut body = b"{\"RedfishVersion\": \"1.0.0\", \"Padding\": \"".to_vec();
    body.resize(40 * 1024 * 1024, b'a');
    body.extend_from_slice(b"\"}");
    let output = health_exit(http_response("application/json", &body)).await;
    assert_code(&output, 7);
    assert!(
        stderr(&output).contains("exceeds the maximum"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_server_is_a_tls_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let cli = Cli::new();
    let output = cli.run(&["server", "add", "x", &url]).await;
    assert_code(&output, 6);
    assert_eq!(
        stderr(&output).trim().lines().count(),
        1,
        "{}",
        stderr(&output)
    );
}
