//! A PostgreSQL server of the test's own: a cluster made by `initdb` in a temporary
//! folder, which a fault test may SIGKILL and start again without touching the machine's
//! server that every other test shares. Debian's server binaries are used
//! (`/usr/lib/postgresql/<version>/bin`), run as the `postgres` user (PostgreSQL refuses
//! to run as root).

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct OwnPostgres {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    user: (u32, u32),
    server: Option<Child>,
}

impl OwnPostgres {
    /// Makes a cluster under `dir` (which must outlive it) and starts it on a free port.
    pub async fn start(dir: &Path) -> OwnPostgres {
        let bin = server_binaries();
        let user = postgres_user();
        let root = dir.join("postgres");
        std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
        std::os::unix::fs::chown(dir, Some(user.0), Some(user.1))
            .unwrap_or_else(|e| panic!("chown {}: {e}", dir.display()));
        std::os::unix::fs::chown(&root, Some(user.0), Some(user.1)).unwrap_or_else(|e| panic!("chown: {e}"));
        let data = root.join("data");
        let output = Command::new(bin.join("initdb"))
            .args(["--auth=trust", "--username=postgres", "--no-sync", "--encoding=UTF8", "-D"])
            .arg(&data)
            .uid(user.0)
            .gid(user.1)
            .output()
            .unwrap_or_else(|e| panic!("running initdb: {e}"));
        assert!(output.status.success(), "initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0);
        let mut postgres = OwnPostgres { bin, data, log: root.join("server.log"), port, user, server: None };
        postgres.restart().await;
        postgres
    }

    /// `postgres://` URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Kills the server at once (SIGKILL to the postmaster), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    /// Starts the server (again, after [`kill`](Self::kill): it recovers from its WAL) and
    /// waits until it accepts queries. Retries while the old server's backends, which
    /// notice the postmaster's death on their own, still hold its shared memory.
    pub async fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .unwrap_or_else(|e| panic!("{}: {e}", self.log.display()));
            let mut server = Command::new(self.bin.join("postgres"))
                .arg("-D")
                .arg(&self.data)
                .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
                .arg("-c")
                .arg(format!("unix_socket_directories={}", self.data.display()))
                .uid(self.user.0)
                .gid(self.user.1)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap_or_else(|e| panic!("{e}")))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("starting postgres: {e}"));
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(15) {
                if server.try_wait().ok().flatten().is_some() {
                    break;
                }
                if self.answers().await {
                    self.server = Some(server);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = server.kill();
            let _ = server.wait();
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            assert!(Instant::now() < deadline, "PostgreSQL did not start again within 30 s:\n{log}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn answers(&self) -> bool {
        sqlx::any::install_default_drivers();
        match <sqlx::AnyConnection as sqlx::Connection>::connect(&self.url()).await {
            Ok(mut connection) => sqlx::query("SELECT 1").execute(&mut connection).await.is_ok(),
            Err(_) => false,
        }
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The newest Debian PostgreSQL server installed.
fn server_binaries() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .filter(|(_, bin)| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!("no PostgreSQL server in /usr/lib/postgresql/*/bin: install Debian's postgresql (./test.sh does)")
    })
}

/// The `postgres` user's uid and gid, from /etc/passwd.
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres"))
                .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))?
        })
        .unwrap_or_else(|| panic!("no `postgres` user on this machine (Debian's postgresql package makes it)"))
}
