//! Test certificates for servers that speak TLS: a CA, a server certificate for 127.0.0.1 and
//! `localhost` signed by it, and a second CA that signed nothing here (for tests that must
//! refuse a server). Made with the `openssl` command.
//!
//! ```no_run
//! use stream_testkit::mariadb::MariaDb;
//! use stream_testkit::tls::TestCerts;
//!
//! let certs = TestCerts::make(&MariaDb::temp_dir("certs")).expect("openssl");
//! let args = certs.mariadb_args();
//! let args: Vec<&str> = args.iter().map(String::as_str).collect();
//! let server = MariaDb::start(&MariaDb::temp_dir("tls"), &args).expect("MariaDB");
//! let url = format!("{}/?ssl-mode=verify-identity&ssl-ca={}", server.url(), certs.ca().display());
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

/// The commands that make the files, run in the certificates' directory.
const MAKE: &str = r#"
set -e
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=ustream-test-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other-ca.pem -days 2 -subj /CN=someone-else 2>/dev/null
"#;

/// A directory of test certificates; removed when dropped.
#[derive(Debug)]
pub struct TestCerts {
    dir: PathBuf,
}

impl TestCerts {
    /// Makes `ca.pem`, `server.pem`, `server.key` and `other-ca.pem` in `dir` (created).
    pub fn make(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let status = Command::new("bash")
            .args(["-c", MAKE])
            .current_dir(dir)
            .status()
            .map_err(|e| format!("running openssl through bash: {e}"))?;
        if !status.success() {
            return Err(format!(
                "openssl could not make test certificates in {} ({status}); is the openssl \
                 command installed?",
                dir.display()
            ));
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The CA that signed the server certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A CA that signed nothing here (PEM).
    pub fn other_ca(&self) -> PathBuf {
        self.dir.join("other-ca.pem")
    }

    /// The `mariadbd` flags that make a [`MariaDb`](crate::mariadb::MariaDb) serve TLS with
    /// the server certificate.
    pub fn mariadb_args(&self) -> Vec<String> {
        [
            ("ssl-cert", "server.pem"),
            ("ssl-key", "server.key"),
            ("ssl-ca", "ca.pem"),
        ]
        .iter()
        .map(|(flag, file)| format!("--{flag}={}", self.dir.join(file).display()))
        .collect()
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
