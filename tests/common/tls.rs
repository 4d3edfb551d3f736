//! DICOM TLS for the tests: the example certificates of `scripts/certs.sh` (made once per
//! target folder), a node with a TLS listener, and the DCMTK `+tls` arguments.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use segnode::config::Config;
use segnode::scp;
use segnode::spool::Spool;
use segnode::tls::{PeerTlsConfig, ServerTlsConfig};

use super::TestNode;

/// The folder with ca.pem, segnode.pem/.key, peer.pem/.key, expired.pem/.key,
/// untrusted.pem/.key and untrusted-ca.pem.
pub fn certs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("segnode-test-certs");
        if dir.join(".complete").is_file() {
            return dir;
        }
        // Made aside, then renamed into place: test binaries running at once never see a
        // half-written set (the loser of the race removes its own).
        let work = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("segnode-test-certs.{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/certs.sh");
        let status = std::process::Command::new("bash")
            .arg(&script)
            .arg(&work)
            .status()
            .expect("run scripts/certs.sh (bash and openssl are needed: make setup)");
        assert!(status.success(), "scripts/certs.sh failed");
        if std::fs::rename(&work, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&work);
        }
        assert!(dir.join(".complete").is_file());
        dir
    })
}

/// A file of the example set.
pub fn cert(name: &str) -> PathBuf {
    certs().join(name)
}

/// `[tls]` for a node: segnode's certificate, clients must present one from the CA.
pub fn server_config() -> ServerTlsConfig {
    ServerTlsConfig {
        port: 2762,
        certificate: cert("segnode.pem"),
        private_key: cert("segnode.key"),
        ca: Some(cert("ca.pem")),
        require_client_certificate: true,
        keep_plain_port: false,
    }
}

/// A requestor's TLS: trusts the example CA; presents `client` (`"segnode"`, `"peer"`,
/// `"expired"` …) unless `None`.
pub fn client_config(client: Option<&str>) -> PeerTlsConfig {
    PeerTlsConfig {
        ca: cert("ca.pem"),
        certificate: client.map(|c| cert(&format!("{c}.pem"))),
        private_key: client.map(|c| cert(&format!("{c}.key"))),
    }
}

/// DCMTK's `+tls KEY CERT +cf CA` for the example certificate `who`.
pub fn dcmtk_tls_args(who: &str) -> Vec<String> {
    vec![
        "+tls".into(),
        cert(&format!("{who}.key")).display().to_string(),
        cert(&format!("{who}.pem")).display().to_string(),
        "+cf".into(),
        cert("ca.pem").display().to_string(),
    ]
}

/// A node whose only listener speaks DICOM over TLS (`config.tls` from
/// [`server_config`] unless the tweak changes it).
pub async fn start_tls_node(tweak: impl FnOnce(&mut Config)) -> TestNode {
    let temp = tempfile::tempdir().expect("create a temporary data folder");
    let mut config = super::test_config(temp.path());
    config.tls = Some(server_config());
    tweak(&mut config);
    let spool =
        std::sync::Arc::new(Spool::open(&config.node.data_dir, &config.storage).expect("spool"));
    let tls = segnode::serve::server_tls(&config).expect("the example TLS files load");
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let mut node = TestNode::start_on_listener(spool, config, scp::Listener::tls(tcp, tls)).await;
    node._temp = Some(temp);
    node
}
