//! `serve --metrics-listen ADDR`: `/metrics` on a listener of its own, so that it never
//! faces the public proxy; the counters themselves live in [`crate::metrics`].

use std::net::{SocketAddr, TcpListener};
use std::thread;

use log::{info, warn};
use prometheus_client::encoding::prometheus_text;

use crate::error::Error;
use crate::metrics::text;

/// Serves `GET /metrics` at `addr` on a thread of its own; returns the bound address. Its
/// listener has no deadlines: they would bound its accept too, and nothing knocks there
/// (`crate::gate`); it faces only the local scraper.
pub fn serve(addr: SocketAddr) -> Result<SocketAddr, Error> {
    let cannot = |e| Error::Io(format!("cannot listen for metrics on {addr}"), e);
    let listener = TcpListener::bind(addr).map_err(cannot)?;
    let bound = listener.local_addr().map_err(cannot)?;
    let server = tiny_http::Server::from_listener(listener, None)
        .map_err(|e| cannot(std::io::Error::other(e.to_string())))?;
    info!("metrics on http://{bound}/metrics");
    let content_type = tiny_http::Header::from_bytes("Content-Type", prometheus_text::CONTENT_TYPE)
        .map_err(|()| Error::Startup("the metrics' content type is not a header".into()))?;
    thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let found = request.url() == "/metrics"
                    && matches!(
                        request.method(),
                        tiny_http::Method::Get | tiny_http::Method::Head
                    );
                let response = if found {
                    tiny_http::Response::from_string(text()).with_header(content_type.clone())
                } else {
                    tiny_http::Response::from_string("not found\n").with_status_code(404)
                };
                if let Err(e) = request.respond(response) {
                    warn!("metrics: could not send the response: {e}");
                }
            }
        })
        .map_err(|e| Error::Io("cannot start the metrics thread".into(), e))?;
    Ok(bound)
}
