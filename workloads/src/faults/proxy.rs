//! The link proxy: a userspace TCP proxy in the bench that sits in front of
//! every node of a local cluster when a spec asks for link faults
//! (`latency`, `stall`, `bandwidth`, `loss`): `tc netem` is absent from
//! these kernels and from many CI machines.
//!
//! Node `j` listens on a port of its own address that nobody is told
//! about (`dynamo-node serve --listen`); the cluster file names the
//! proxy's listener on the same address, so every peer and client
//! connection to `j` passes the proxy. A peer's connection comes from its
//! own loopback address, so the proxy knows each connection's link (`i` to
//! `j`). A link fault on a node acts on every peer link of that node, both
//! ways; the driver's connections are forwarded untouched. With no fault
//! on, a chunk is forwarded as soon as it is read: [`Calibration`]
//! measures what that costs per round trip, so that it is known.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynamo_node::sync::Recover;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::LinkFault;
use crate::keys::Rng;

/// The faults on now, by node name.
type Faults = Arc<Mutex<HashMap<String, LinkFault>>>;

/// The proxy of one run: listeners in front of every node, on a thread of
/// their own.
pub struct Proxy {
    faults: Faults,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// What the proxy costs when it adds nothing.
    pub calibration: Calibration,
}

/// A node behind the proxy.
#[derive(Clone, Debug)]
pub struct Fronted {
    /// Its name.
    pub name: String,
    /// Where the cluster file says it is (the proxy listens here).
    pub advertised: SocketAddr,
    /// Where it really listens.
    pub listen: SocketAddr,
}

/// The proxy's own cost: round trips of a small message to an echo server,
/// direct and through the proxy, measured when it starts.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Calibration {
    /// Round trips measured each way.
    pub round_trips: usize,
    /// Median round trip, direct, µs.
    pub direct_p50_us: f64,
    /// Median round trip through the proxy, µs.
    pub proxied_p50_us: f64,
    /// 99th percentile direct, µs.
    pub direct_p99_us: f64,
    /// 99th percentile through the proxy, µs.
    pub proxied_p99_us: f64,
}

impl Calibration {
    /// One line for the terminal.
    pub fn text(&self) -> String {
        format!(
            "link proxy's own cost: round trip p50 {:.0} µs through it vs {:.0} µs direct (+{:.0}), p99 {:.0} vs {:.0} µs ({} round trips each)",
            self.proxied_p50_us,
            self.direct_p50_us,
            self.proxied_p50_us - self.direct_p50_us,
            self.proxied_p99_us,
            self.direct_p99_us,
            self.round_trips
        )
    }
}

impl Proxy {
    /// Binds a listener at every node's advertised address, measures the
    /// proxy's own cost, and forwards until dropped.
    ///
    /// # Errors
    /// An address cannot be bound, or the runtime cannot start.
    pub fn start(nodes: Vec<Fronted>) -> std::io::Result<Proxy> {
        let faults: Faults = Arc::default();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let by_ip: Arc<HashMap<IpAddr, String>> = Arc::new(
            nodes
                .iter()
                .map(|node| (node.advertised.ip(), node.name.clone()))
                .collect(),
        );
        let listeners = runtime.block_on(async {
            let mut listeners = Vec::new();
            for node in &nodes {
                listeners.push((TcpListener::bind(node.advertised).await?, node.clone()));
            }
            std::io::Result::Ok(listeners)
        })?;
        let calibration = runtime.block_on(calibrate(400))?;
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let serving = Arc::clone(&faults);
        let thread = std::thread::Builder::new().name("link-proxy".into()).spawn(move || {
            runtime.block_on(async move {
                for (listener, node) in listeners {
                    tokio::spawn(accept(listener, node, Arc::clone(&by_ip), Arc::clone(&serving)));
                }
                let _ = stop.await;
            });
        })?;
        Ok(Proxy {
            faults,
            shutdown: Some(shutdown),
            thread: Some(thread),
            calibration,
        })
    }

    /// Puts `fault` on every peer link of `node`.
    pub fn set(&self, node: &str, fault: LinkFault) {
        self.faults.lock().recover().insert(node.to_string(), fault);
    }

    /// Takes the fault off `node`'s links.
    pub fn clear(&self, node: &str) {
        self.faults.lock().recover().remove(node);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Which fault acts on the link between `from` and `to` now: the first
/// found of either end's (a node's fault covers all of its links).
fn on_link(faults: &Faults, from: Option<&str>, to: &str) -> Option<LinkFault> {
    let from = from?;
    let faults = faults.lock().recover();
    faults.get(to).or_else(|| faults.get(from)).copied()
}

async fn accept(listener: TcpListener, node: Fronted, by_ip: Arc<HashMap<IpAddr, String>>, faults: Faults) {
    let mut seed = 0x0070_726f_7879_u64 ^ u64::from(node.advertised.port()); // "proxy"
    loop {
        let Ok((inbound, from)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        seed = seed.wrapping_add(1);
        let peer = by_ip.get(&from.ip()).cloned();
        let faults = Arc::clone(&faults);
        let node = node.clone();
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(node.listen).await else {
                return; // the node is down: the caller sees its connection close
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (in_read, in_write) = inbound.into_split();
            let (out_read, out_write) = outbound.into_split();
            let link = Link {
                faults,
                from: peer,
                to: node.name.clone(),
            };
            // Either direction ending (or a drop) closes both.
            tokio::select! {
                _ = pump(in_read, out_write, link.clone(), Rng::new(seed)) => {}
                _ = pump(out_read, in_write, link, Rng::new(!seed)) => {}
            }
        });
    }
}

#[derive(Clone)]
struct Link {
    faults: Faults,
    from: Option<String>,
    to: String,
}

impl Link {
    fn fault(&self) -> Option<LinkFault> {
        on_link(&self.faults, self.from.as_deref(), &self.to)
    }
}

/// Forwards one direction: a reader that stamps each chunk with when it is
/// due, and a writer that delivers chunks in order when due, holding them
/// while the link is stalled and pacing them on a slow link.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Link,
    mut rng: Rng,
) {
    let (chunks, mut due) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reading = {
        let link = link.clone();
        async move {
            let mut last_due = Instant::now();
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let read = match from.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => read,
                };
                let now = Instant::now();
                let at = match link.fault() {
                    Some(LinkFault::Latency { delay, jitter }) => {
                        let jitter = jitter.mul_f64(rng.unit());
                        (now + delay + jitter).max(last_due)
                    }
                    Some(LinkFault::Loss { drop }) if rng.unit() < drop => return,
                    _ => now.max(last_due),
                };
                last_due = at;
                if chunks.send((at, buffer[..read].to_vec())).is_err() {
                    return;
                }
            }
        }
    };
    let writing = async move {
        while let Some((at, bytes)) = due.recv().await {
            // Only when due later: tokio's timer rounds up to the next
            // millisecond, which would add 1 ms to every undelayed chunk.
            if at > Instant::now() {
                tokio::time::sleep_until(at.into()).await;
            }
            while link.fault() == Some(LinkFault::Stall) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if to.write_all(&bytes).await.is_err() {
                return;
            }
            if let Some(LinkFault::Bandwidth { bytes_per_second }) = link.fault() {
                let seconds = bytes.len() as f64 / bytes_per_second.max(1) as f64;
                tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            }
        }
    };
    tokio::select! {
        () = reading => {}
        () = writing => {}
    }
}

/// Measures round trips of a 64-byte message to an echo server on
/// loopback, direct and through a proxy listener with no fault on.
async fn calibrate(round_trips: usize) -> std::io::Result<Calibration> {
    let echo = TcpListener::bind("127.0.0.1:0").await?;
    let echo_addr = echo.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = echo.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 64];
                while socket.read_exact(&mut buffer).await.is_ok() {
                    if socket.write_all(&buffer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let front = TcpListener::bind("127.0.0.1:0").await?;
    let front_addr = front.local_addr()?;
    let node = Fronted {
        name: "echo".into(),
        advertised: front_addr,
        listen: echo_addr,
    };
    let accepting = tokio::spawn(accept(front, node, Arc::default(), Arc::default()));
    let direct = round_trip_times(echo_addr, round_trips).await?;
    let proxied = round_trip_times(front_addr, round_trips).await?;
    accepting.abort();
    let at = |times: &[f64], quantile: f64| times[((times.len() - 1) as f64 * quantile) as usize];
    Ok(Calibration {
        round_trips,
        direct_p50_us: at(&direct, 0.5),
        proxied_p50_us: at(&proxied, 0.5),
        direct_p99_us: at(&direct, 0.99),
        proxied_p99_us: at(&proxied, 0.99),
    })
}

/// Sorted round-trip times, µs.
async fn round_trip_times(addr: SocketAddr, count: usize) -> std::io::Result<Vec<f64>> {
    let mut socket = TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    let mut buffer = [7u8; 64];
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        socket.write_all(&buffer).await?;
        socket.read_exact(&mut buffer).await?;
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo "node" n2 behind a proxy listener whose connections from
    /// 127.0.0.1 count as peer n1's, with `faults` shared with the test.
    fn echo_behind_proxy(runtime: &tokio::runtime::Runtime, faults: Faults) -> SocketAddr {
        let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let listen = echo.local_addr().unwrap();
        std::thread::spawn(move || {
            for socket in echo.incoming() {
                let Ok(mut socket) = socket else { return };
                std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    let mut buffer = [0u8; 64];
                    while socket.read_exact(&mut buffer).is_ok() && socket.write_all(&buffer).is_ok() {}
                });
            }
        });
        let front = runtime.block_on(TcpListener::bind("127.0.0.2:0")).unwrap();
        let advertised = front.local_addr().unwrap();
        let node = Fronted {
            name: "n2".into(),
            advertised,
            listen,
        };
        let by_ip = Arc::new([(IpAddr::from([127, 0, 0, 1]), "n1".to_string())].into());
        runtime.spawn(accept(front, node, by_ip, faults));
        advertised
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn median_ms(runtime: &tokio::runtime::Runtime, addr: SocketAddr) -> f64 {
        let times = runtime.block_on(round_trip_times(addr, 11)).unwrap();
        times[times.len() / 2] / 1000.0
    }

    #[test]
    fn latency_delays_each_way_and_no_fault_adds_little() {
        let runtime = runtime();
        let faults: Faults = Arc::default();
        let addr = echo_behind_proxy(&runtime, Arc::clone(&faults));
        let plain = median_ms(&runtime, addr);
        assert!(plain < 20.0, "no fault on: {plain} ms");
        faults.lock().unwrap().insert(
            "n2".into(),
            LinkFault::Latency {
                delay: Duration::from_millis(20),
                jitter: Duration::ZERO,
            },
        );
        let delayed = median_ms(&runtime, addr);
        assert!(delayed >= 40.0, "20 ms each way: {delayed} ms");
        faults.lock().unwrap().clear();
        let healed = median_ms(&runtime, addr);
        assert!(healed < 20.0, "healed: {healed} ms");
    }

    #[test]
    fn a_stall_holds_everything_until_it_ends_and_loss_drops_the_connection() {
        let runtime = runtime();
        let faults: Faults = Arc::default();
        let addr = echo_behind_proxy(&runtime, Arc::clone(&faults));
        faults.lock().unwrap().insert("n1".into(), LinkFault::Stall);
        let lifting = Arc::clone(&faults);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            lifting.lock().unwrap().clear();
        });
        let stalled = runtime.block_on(round_trip_times(addr, 1)).unwrap()[0] / 1000.0;
        assert!(stalled >= 250.0, "a round trip crossed a stalled link in {stalled} ms");
        faults
            .lock()
            .unwrap()
            .insert("n2".into(), LinkFault::Loss { drop: 1.0 });
        let dropped = runtime.block_on(round_trip_times(addr, 1));
        assert!(dropped.is_err(), "a connection survived certain loss: {dropped:?}");
    }

    #[test]
    fn the_calibration_measures_both_paths() {
        let runtime = runtime();
        let calibration = runtime.block_on(calibrate(50)).unwrap();
        assert_eq!(calibration.round_trips, 50);
        assert!(
            calibration.direct_p50_us > 0.0 && calibration.proxied_p50_us > 0.0,
            "{calibration:?}"
        );
        assert!(calibration.text().contains("through it"));
    }
}
