//! A throwaway certificate authority for TLS tests: a CA, a server certificate for
//! `localhost` and a client certificate it signed, as PEM files in a temporary directory
//! readable by the servers (which may run as `nobody`).

use std::path::PathBuf;

pub struct TestCerts {
    dir: tempfile::TempDir,
}

impl TestCerts {
    pub fn new() -> TestCerts {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Kite test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let signed = |names: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names.clone()).unwrap();
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, names[0].as_str());
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server, server_key) = signed(vec!["localhost".into()]);
        let (client, client_key) = signed(vec!["kite-client".into()]);
        for (name, pem) in [
            ("ca.pem", ca.pem()),
            ("server.pem", server),
            ("server.key", server_key),
            ("client.pem", client),
            ("client.key", client_key),
        ] {
            std::fs::write(dir.path().join(name), pem).unwrap();
        }
        let certs = TestCerts { dir };
        certs.give_to_server_user();
        certs
    }

    /// `ca.pem`, `server.pem`, `server.key`, `client.pem` or `client.key`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Servers run as `nobody` when the tests run as root; PostgreSQL wants its key owned
    /// by its user and private to it.
    fn give_to_server_user(&self) {
        use std::os::unix::fs::PermissionsExt;
        // SAFETY: getuid only reads the process's user id.
        let root = unsafe { libc::getuid() } == 0;
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if root {
                std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
            }
            let mode = if path.extension().is_some_and(|e| e == "key") {
                0o600
            } else {
                0o644
            };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        if root {
            std::os::unix::fs::chown(self.dir.path(), Some(65534), Some(65534)).unwrap();
        }
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}
