//! Real browser pages in a Rust test: runs tests/browser/pages.mjs (headless Debian
//! Chromium through playwright-core, `npm ci` in tests/browser first), which opens one
//! page per person and prints what each sees every 500 ms. Run the test where WebRTC can
//! reach only loopback (inside `unshare -n`, as ./test.sh does).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::stack::repo;

/// The pages and the samples they reported, newest last.
#[derive(Debug)]
pub struct Pages {
    child: Child,
    stdin: Option<ChildStdin>,
    samples: Arc<Mutex<Vec<Value>>>,
}

impl Pages {
    /// Opens a page at `url` for each (name, join token) and waits until all have joined.
    pub async fn open(url: &str, people: &[(&str, String)]) -> Pages {
        let list: Vec<Value> =
            people.iter().map(|(name, token)| serde_json::json!({ "name": name, "token": token })).collect();
        let browser_tests = repo().join("tests/browser");
        let mut child = Command::new("node")
            .arg("pages.mjs")
            .arg(url)
            .current_dir(&browser_tests)
            .env("ISOPLANE_PAGES", Value::Array(list).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("running node (Node.js, ./test.sh installs it): {e}"));
        let stdin = child.stdin.take().unwrap_or_else(|| panic!("node's stdin"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("node's stdout"));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let sink = samples.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(sample) => sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(sample),
                    Err(_) => println!("pages: {line}"),
                }
            }
        });
        let mut pages = Pages { child, stdin: Some(stdin), samples };
        pages.until("the pages to join", Duration::from_secs(90), |s| s.get("ready").is_some()).await;
        let names: Vec<&str> = people.iter().map(|(name, _)| *name).collect();
        pages.until("a first sample", Duration::from_secs(30), |s| names.iter().all(|n| s[n]["self"].is_u64())).await;
        pages
    }

    /// Asks `name`'s page to walk to tile (x, y).
    pub fn walk(&mut self, name: &str, x: u32, y: u32) {
        self.send(&format!("walk {name} {x} {y}"));
    }

    /// Runs `code` in `name`'s page (a probe the debug view offers).
    pub fn eval(&mut self, name: &str, code: &str) {
        self.send(&format!("eval {name} {code}"));
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap_or_else(|| panic!("the pages are closed"));
        writeln!(stdin, "{line}").unwrap_or_else(|e| panic!("the pages' script has gone: {e}"));
    }

    /// The newest sample.
    pub fn latest(&self) -> Value {
        self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner).last().cloned().unwrap_or(Value::Null)
    }

    /// Waits for a sample newer than the call for which `test` holds; panics naming `what`
    /// with the last sample after `timeout`. Returns the sample and how long it took.
    pub async fn until(&mut self, what: &str, timeout: Duration, test: impl Fn(&Value) -> bool) -> (Value, Duration) {
        let start = Instant::now();
        let mut seen = self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len();
        loop {
            let fresh: Vec<Value> = {
                let samples = self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let fresh = samples[seen..].to_vec();
                seen = samples.len();
                fresh
            };
            if let Some(sample) = fresh.into_iter().find(|s| test(s)) {
                return (sample, start.elapsed());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the pages' script exited ({status}) while waiting for {what}");
            }
            assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}; last sample: {}", self.latest());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `name` receives media from `peer` with the plan's topology in
    /// `topologies`: frames decoded grow by `MEDIA_FRAMES` over consecutive samples of that
    /// topology. Returns how long it took.
    pub async fn until_media_flows(
        &mut self,
        name: &str,
        peer: u64,
        topologies: &[&str],
        timeout: Duration,
    ) -> Duration {
        const MEDIA_FRAMES: u64 = 15;
        let start = Instant::now();
        let baseline: Mutex<Option<u64>> = Mutex::new(None);
        let what = format!("{name} receiving {peer}'s media over {topologies:?}");
        self.until(&what, timeout, |sample| {
            let page = &sample[name];
            let on_topology = page["topology"].as_str().is_some_and(|t| topologies.contains(&t));
            let frames = page["peers"][peer.to_string()]["frames"].as_u64();
            let mut baseline = baseline.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match (on_topology, frames, *baseline) {
                (false, _, _) | (true, None, _) => {
                    *baseline = None;
                    false
                }
                (true, Some(frames), None) => {
                    *baseline = Some(frames);
                    false
                }
                // A new connection starts counting again from zero.
                (true, Some(frames), Some(first)) if frames < first => {
                    *baseline = Some(frames);
                    false
                }
                (true, Some(frames), Some(first)) => frames >= first + MEDIA_FRAMES,
            }
        })
        .await;
        start.elapsed()
    }

    /// `name`'s avatar number.
    pub fn avatar(&self, name: &str) -> u64 {
        let samples = self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        samples.iter().rev().find_map(|s| s[name]["self"].as_u64()).unwrap_or_else(|| panic!("no sample of {name} yet"))
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // Closing stdin lets the script close Chromium; a script that hangs is killed.
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
