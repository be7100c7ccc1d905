//! Pacing for load generators: sleeping until a request's intended start
//! to the microsecond, so that latency counted from that start is the
//! cluster's and not the generator's timer.

use std::time::Instant;

/// A sleep to the microsecond: a `timerfd` the runtime polls. Tokio's
/// own timer rounds every sleep up to the next millisecond; a load
/// generator pacing on it adds that rounding to every latency it counts
/// from an intended start (measured with the cluster bench: 0.7-0.9 ms at
/// the median of puts paced at 1,000/s). A thread keeping the schedule and
/// handing each request to a task instead is exact too, but costs a
/// cross-thread wake per request (the machine went from 65% to 90% busy at
/// 6,000 puts/s).
///
/// One per task that paces; it must be made inside a Tokio runtime.
pub struct PreciseSleep {
    fd: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
}

impl PreciseSleep {
    /// A timer of its own, registered with the current runtime.
    ///
    /// # Errors
    /// The kernel refuses a `timerfd`, or the runtime refuses to poll it.
    pub fn new() -> std::io::Result<PreciseSleep> {
        use std::os::fd::FromRawFd;
        // SAFETY: a plain system call; the descriptor it returns is owned
        // below.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and nothing else owns it.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: the `OwnedFd` keeps the descriptor open, the same one,
        // for as long as the `AsyncFd` holds it.
        let fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
            .map_err(|error| error.into_parts().1)?;
        Ok(PreciseSleep { fd })
    }

    /// Returns at `at` (at once if it has passed).
    ///
    /// # Errors
    /// The timer cannot be set or read.
    pub async fn until(&self, at: Instant) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let wait = at.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Ok(());
        }
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            },
        };
        let fd = self.fd.get_ref().as_raw_fd();
        // SAFETY: `spec` lives across the call; the old value is not asked for.
        if unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        loop {
            let mut ready = self.fd.readable().await?;
            let mut expirations = 0u64;
            // SAFETY: reads 8 bytes into a u64 that lives across the call.
            let read = unsafe { libc::read(fd, (&raw mut expirations).cast(), 8) };
            if read == 8 {
                return Ok(());
            }
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::WouldBlock {
                return Err(error);
            }
            ready.clear_ready();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn never_returns_before_the_time_asked_for() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let sleep = PreciseSleep::new().unwrap();
            // Again and again on one timer: each wait is set afresh, and an
            // expiry already read does not end the next wait early.
            for micros in [300u64, 1, 1500, 50, 2500] {
                let at = Instant::now() + Duration::from_micros(micros);
                sleep.until(at).await.unwrap();
                assert!(Instant::now() >= at, "returned before {micros} µs had passed");
            }
            // A time that has passed: at once.
            sleep.until(Instant::now() - Duration::from_millis(5)).await.unwrap();
        });
    }
}
