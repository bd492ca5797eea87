//! Starts real `nats-server` processes for the tests and the benchmark: a single JetStream
//! server or a three-node JetStream cluster, every listener on 127.0.0.1 (client `-a
//! 127.0.0.1`, cluster routes on loopback ports), each server's store in a temp dir.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `nats-server` binary, if installed (PATH, then /usr/sbin, /usr/bin).
pub fn nats_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

/// `Some(binary)`, or prints why the test is skipped and answers `None`.
pub fn require_nats(test: &str) -> Option<PathBuf> {
    let found = nats_server();
    if found.is_none() {
        eprintln!("SKIPPED {test}: nats-server is not installed (apt-get install nats-server; .ci/run installs it)");
    }
    found
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One server.
pub struct Node {
    bin: PathBuf,
    pub name: String,
    pub port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let log = std::fs::File::create(self.conf.with_extension("log")).unwrap();
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not listen on 127.0.0.1:{} in 20 s (log {})",
                self.name,
                self.port,
                self.conf.with_extension("log").display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A single server or a cluster, and its temp dir.
pub struct Nats {
    pub nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

impl Nats {
    /// One JetStream server.
    pub fn single(bin: &Path) -> Self {
        Self::new(bin, 1)
    }

    /// Three JetStream servers in one cluster, routes on loopback ports.
    pub fn cluster(bin: &Path) -> Self {
        Self::new(bin, 3)
    }

    fn new(bin: &Path, n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let mut nodes = Vec::new();
        for (i, &(port, cport)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let store = dir.path().join(&name);
            std::fs::create_dir_all(&store).unwrap();
            let mut conf = format!(
                "server_name: {name}\nlisten: \"127.0.0.1:{port}\"\njetstream {{\n  store_dir: \"{}\"\n}}\n",
                store.display()
            );
            if n > 1 {
                let routes: Vec<String> = ports
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, &(_, c))| format!("\"nats-route://127.0.0.1:{c}\""))
                    .collect();
                conf.push_str(&format!(
                    "cluster {{\n  name: batpak\n  listen: \"127.0.0.1:{cport}\"\n  routes: [{}]\n}}\n",
                    routes.join(", ")
                ));
            }
            let path = dir.path().join(format!("{name}.conf"));
            std::fs::File::create(&path)
                .unwrap()
                .write_all(conf.as_bytes())
                .unwrap();
            nodes.push(Node {
                bin: bin.to_path_buf(),
                name,
                port,
                conf: path,
                child: None,
            });
        }
        let mut nats = Self { nodes, dir };
        for node in &mut nats.nodes {
            node.start();
        }
        nats
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    pub fn kill_all(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
    }

    pub fn start_all(&mut self) {
        for n in &mut self.nodes {
            if !n.running() {
                n.start();
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}
