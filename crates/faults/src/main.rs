//! `resizer-faults --listen 127.0.0.1:4567 --upstream http://127.0.0.1:4566`: the fault proxy
//! (see the crate's documentation). Started and stopped by `localstack/up.sh` and `down.sh`.

use std::net::SocketAddr;

fn usage() -> ! {
    eprintln!("usage: resizer-faults --listen <ip:port> --upstream <http://ip:port>");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut listen: Option<SocketAddr> = None;
    let mut upstream: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--listen" => listen = Some(value.parse().unwrap_or_else(|_| usage())),
            "--upstream" => upstream = Some(value),
            _ => usage(),
        }
    }
    let (Some(listen), Some(upstream)) = (listen, upstream) else {
        usage()
    };
    let proxy = match resizer_faults::Proxy::new(&upstream) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("resizer-faults: {e}");
            std::process::exit(2)
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("resizer-faults: cannot listen on {listen}: {e}");
            std::process::exit(1)
        }
    };
    eprintln!("resizer-faults: listening on {listen}, forwarding to {upstream}");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = proxy.serve(listener) => {}
        _ = term.recv() => eprintln!("resizer-faults: SIGTERM, stopping"),
        _ = tokio::signal::ctrl_c() => eprintln!("resizer-faults: SIGINT, stopping"),
    }
}
