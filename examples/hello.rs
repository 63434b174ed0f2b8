//! The yardstick of bench/run: a bare tiny_http server with the same worker pool shape as
//! zulip-auth, answering every request with a fixed JSON body, 31 bytes or as long as asked
//! (the size of the answer it stands beside). Whatever zulip-auth's cheap paths cost beyond
//! this is our overhead.
//!
//! Usage: cargo run --release --example hello -- [LISTEN] [WORKERS] [BODY_BYTES]

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "the benchmark's yardstick: a panic with its message is the report"
)]

use std::io::Write;
use std::sync::Arc;
use std::thread;

use tiny_http::{Header, Response, Server};

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let workers: usize = args
        .next()
        .map_or(2, |n| n.parse().expect("WORKERS is a number"));
    let size: usize = args
        .next()
        .map_or(0, |n| n.parse().expect("BODY_BYTES is a number"));
    let body = format!(
        "{{\"result\":\"success\",\"msg\":\"{}\"}}\n",
        "x".repeat(size.saturating_sub(31))
    );
    let body: &'static [u8] = body.leak().as_bytes();
    let server = Arc::new(Server::http(&listen).expect("can listen"));
    let addr = server.server_addr().to_ip().expect("an IP listener");
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{addr}").expect("stdout");
    stdout.flush().expect("stdout");
    let content_type =
        Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]).expect("static header");
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let (server, content_type) = (Arc::clone(&server), content_type.clone());
            thread::spawn(move || {
                while let Ok(request) = server.recv() {
                    let _ = request
                        .respond(Response::from_data(body).with_header(content_type.clone()));
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}
