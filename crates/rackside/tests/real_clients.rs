//! Independent Redfish clients against the BMC simulator: DMTF's python-redfish-library and
//! redfishtool read systems and logs and reset the system.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::path::Path;

use support::*;

/// Writes the BMC's certificate as PEM so the Python clients verify TLS against it.
fn write_ca(bmc: &Bmc, dir: &Path) -> String {
    use base64::Engine as _;
    let der = bmc.running.certificate_der();
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    let path = dir.join("bmc.pem");
    std::fs::write(&path, pem).unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_redfish_library_reads_and_resets() {
    let Some(venv) = venv() else { return };
    let bmc = embedded_bmc(&[]).await;
    let files = tempfile::tempdir().unwrap();
    let ca = write_ca(&bmc, files.path());
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/redfish_library_check.py");

    let output = tokio::process::Command::new(venv.join("bin/python"))
        .arg(script)
        .args([&bmc.url(), USER, &ca])
        .env("RACKSIDE_PASSWORD", PASSWORD)
        .output()
        .await
        .unwrap();

    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert!(output.status.success(), "{text}");
    assert!(text.contains("all checks passed"), "{text}");
    assert_eq!(
        bmc.open_sessions().await,
        0,
        "the library's session was not deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redfishtool_reads_systems_and_logs() {
    let Some(venv) = venv() else { return };
    let bmc = embedded_bmc(&[]).await;
    let address = bmc.running.local_addr().to_string();
    let redfishtool = venv.join("bin/redfishtool");
    let base = [
        "-r",
        address.as_str(),
        "-u",
        USER,
        "-p",
        PASSWORD,
        "-S",
        "Always",
        "-A",
        "Session",
    ];

    for command in [
        &["Systems"][..],
        &["Systems", "-1", "get"][..],
        &["Managers", "-1", "Logs", "list"][..],
    ] {
        let output = tokio::process::Command::new(&redfishtool)
            .args(base)
            .args(command)
            .output()
            .await
            .unwrap();
        let text = format!("{}{}", stdout(&output), stderr(&output));
        assert!(
            output.status.success(),
            "redfishtool {command:?} failed: {text}"
        );
        assert!(
            stdout(&output).contains("@odata.id"),
            "redfishtool {command:?}: {text}"
        );
    }
}
