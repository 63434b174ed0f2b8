//! `zulip-auth bench-hash`: how long one argon2 verification takes on this machine, and how
//! many verifications per second N threads manage at once, which bounds login throughput
//! (two computations share caches and memory bandwidth, so N threads do less than N times
//! one). With `--target-ms`, the strongest memory cost that still verifies within a time
//! budget, as an operator tunes a new VM.

use std::time::Duration;

use serde_json::json;

use super::outln;
use crate::auth::password::{Argon2Config, Hasher};
use crate::error::Error;

/// Memory costs tried by `--target-ms` are multiples of this (KiB).
const M_STEP_KIB: u32 = 1024;
/// The most `--target-ms` suggests: 1 GiB, the cap on stored parameters.
const M_MAX_KIB: u32 = 1024 * 1024;
/// Samples per probe of the search: it tries about a dozen memory costs.
const PROBE_SAMPLES: usize = 5;

#[derive(Debug, Clone, Copy)]
struct Timing {
    median_ms: f64,
    p90_ms: f64,
}

impl Timing {
    fn of(mut times: Vec<Duration>) -> Timing {
        times.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Timing {
            median_ms: ms(times[times.len() / 2]),
            p90_ms: ms(times[(times.len() * 9 / 10).min(times.len() - 1)]),
        }
    }
}

fn time(config: Argon2Config, samples: usize) -> Timing {
    Timing::of(Hasher::new(config).time_verifications(samples))
}

/// Verifications per second of `threads` threads verifying at once, `samples` each: every
/// thread's count over the time its verifications took, summed.
fn per_second(config: Argon2Config, samples: usize, threads: usize) -> f64 {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| scope.spawn(move || Hasher::new(config).time_verifications(samples)))
            .collect();
        workers
            .into_iter()
            // A timing thread that panicked measured nothing: it adds no verifications.
            .filter_map(|worker| worker.join().ok())
            .map(|times| samples as f64 / times.iter().sum::<Duration>().as_secs_f64())
            .sum()
    })
}

pub fn run(
    config: Argon2Config,
    samples: usize,
    threads: usize,
    target_ms: Option<f64>,
    json: bool,
) -> Result<(), Error> {
    match target_ms {
        None => report_timing(config, samples, threads, json),
        Some(target_ms) => {
            let measure = |m_kib, samples| time(Argon2Config { m_kib, ..config }, samples);
            let (suggested, timing) = suggest(config, target_ms, measure, samples)?;
            report_suggestion(suggested, timing, target_ms, json)
        }
    }
}

fn report_timing(
    config: Argon2Config,
    samples: usize,
    threads: usize,
    json: bool,
) -> Result<(), Error> {
    let timing = time(config, samples);
    let one_thread = 1000.0 / timing.median_ms;
    let all_threads = if threads == 1 {
        one_thread
    } else {
        per_second(config, samples, threads)
    };
    let Argon2Config { m_kib, t, p } = config;
    if json {
        return outln!(
            "{}",
            json!({
                "m": m_kib, "t": t, "p": p, "samples": samples,
                "median_ms": timing.median_ms, "p90_ms": timing.p90_ms,
                "per_second_one_thread": one_thread,
                "threads": threads, "per_second": all_threads,
            })
        );
    }
    outln!(
        "argon2id m={m_kib} t={t} p={p}: median {:.2} ms, p90 {:.2} ms over {samples} verifications on one thread ({one_thread:.1}/s)",
        timing.median_ms,
        timing.p90_ms,
    )?;
    if threads > 1 {
        outln!("{threads} threads verifying at once: {all_threads:.1}/s in all")?;
    }
    Ok(())
}

fn report_suggestion(
    suggested: Argon2Config,
    timing: Timing,
    target_ms: f64,
    json: bool,
) -> Result<(), Error> {
    let Argon2Config { m_kib, t, p } = suggested;
    if json {
        return outln!(
            "{}",
            json!({
                "m": m_kib, "t": t, "p": p, "target_ms": target_ms,
                "median_ms": timing.median_ms, "p90_ms": timing.p90_ms,
            })
        );
    }
    outln!(
        "suggested: --argon2-m {m_kib} --argon2-t {t} --argon2-p {p} (ZULIP_AUTH_ARGON2_M={m_kib}): median {:.2} ms, p90 {:.2} ms, within {target_ms} ms",
        timing.median_ms,
        timing.p90_ms
    )
}

/// The largest memory cost (a multiple of [`M_STEP_KIB`]) whose median, measured with the
/// full `samples`, is within `target_ms`, and that measurement. `measure(m, samples)` times
/// verifications at memory cost `m`.
fn suggest(
    config: Argon2Config,
    target_ms: f64,
    mut measure: impl FnMut(u32, usize) -> Timing,
    samples: usize,
) -> Result<(Argon2Config, Timing), Error> {
    let too_slow = || {
        Error::Invalid(format!(
            "even m={M_STEP_KIB} t={} p={} takes longer than {target_ms} ms; lower --argon2-t",
            config.t, config.p
        ))
    };
    let probe_samples = samples.min(PROBE_SAMPLES);
    let mut fits_in_budget = |m_kib| measure(m_kib, probe_samples).median_ms <= target_ms;
    let (mut fits, mut too_big) = (M_STEP_KIB, None);
    if !fits_in_budget(fits) {
        return Err(too_slow());
    }
    while too_big.is_none() && fits < M_MAX_KIB {
        let next = (fits * 2).min(M_MAX_KIB);
        if fits_in_budget(next) {
            fits = next
        } else {
            too_big = Some(next)
        }
    }
    while let Some(big) = too_big.filter(|&big| big - fits > M_STEP_KIB) {
        let middle = (fits + big) / 2 / M_STEP_KIB * M_STEP_KIB;
        if fits_in_budget(middle) {
            fits = middle
        } else {
            too_big = Some(middle)
        }
    }
    // The probes took few samples; the full measurement can land over the budget. Step down
    // (in proportion, as time grows about linearly with m) until it is within.
    loop {
        let timing = measure(fits, samples);
        if timing.median_ms <= target_ms {
            return Ok((
                Argon2Config {
                    m_kib: fits,
                    ..config
                },
                timing,
            ));
        }
        if fits == M_STEP_KIB {
            return Err(too_slow());
        }
        let scaled = (f64::from(fits) * target_ms / timing.median_ms) as u32;
        fits = (scaled / M_STEP_KIB * M_STEP_KIB).clamp(M_STEP_KIB, fits - M_STEP_KIB);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: Argon2Config = Argon2Config {
        m_kib: 19456,
        t: 2,
        p: 1,
    };

    /// 1 ms per MiB, and 10% slower when measured with many samples (a warmer, busier
    /// machine): the case where the probes said "fits" and the final figure did not.
    fn machine(m_kib: u32, samples: usize) -> Timing {
        let ms = f64::from(m_kib) / 1024.0 * if samples > PROBE_SAMPLES { 1.1 } else { 1.0 };
        Timing {
            median_ms: ms,
            p90_ms: ms,
        }
    }

    #[test]
    fn the_suggestion_is_within_the_budget_as_measured() {
        let (config, timing) = suggest(CONFIG, 50.0, machine, 30).unwrap();
        assert!(timing.median_ms <= 50.0, "{timing:?}");
        assert_eq!(config.m_kib % M_STEP_KIB, 0);
        // Still the largest step that fits: one more MiB would not.
        assert!(machine(config.m_kib + M_STEP_KIB, 30).median_ms > 50.0);
        assert_eq!((config.t, config.p), (2, 1));
    }

    #[test]
    fn a_budget_below_the_smallest_cost_is_refused() {
        let err = suggest(CONFIG, 0.5, machine, 30).unwrap_err();
        assert!(err.to_string().contains("lower --argon2-t"), "{err}");
        // Fits in the probes, not in the full measurement.
        assert!(suggest(CONFIG, 1.05, machine, 30).is_err());
    }
}
