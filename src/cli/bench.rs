//! `zulip-auth bench-hash`: how long one argon2 verification takes on this machine, which
//! bounds login throughput at `cores / t_verify`; with `--target-ms`, the strongest memory
//! cost that still verifies within a time budget, as an operator tunes a new VM.

use std::time::Duration;

use crate::auth::password::{Argon2Config, Hasher};
use crate::error::Error;

/// Memory costs tried by `--target-ms` are multiples of this (KiB).
const M_STEP_KIB: u32 = 1024;
/// The most `--target-ms` suggests: 1 GiB, the cap on stored parameters.
const M_MAX_KIB: u32 = 1024 * 1024;

struct Timing {
    median: Duration,
    p90: Duration,
}

fn time(config: Argon2Config, samples: usize) -> Timing {
    let mut times = Hasher::new(config).time_verifications(samples.max(1));
    times.sort_unstable();
    Timing {
        median: times[times.len() / 2],
        p90: times[(times.len() * 9 / 10).min(times.len() - 1)],
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn run(
    config: Argon2Config,
    samples: usize,
    target_ms: Option<f64>,
    json: bool,
) -> Result<(), Error> {
    let Some(target_ms) = target_ms else {
        let timing = time(config, samples);
        let Argon2Config { m_kib, t, p } = config;
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "m": m_kib, "t": t, "p": p, "samples": samples,
                    "median_ms": ms(timing.median), "p90_ms": ms(timing.p90),
                })
            );
        } else {
            println!(
                "argon2id m={m_kib} t={t} p={p}: median {:.2} ms, p90 {:.2} ms over {samples} verifications on one thread",
                ms(timing.median),
                ms(timing.p90)
            );
        }
        return Ok(());
    };
    // Fewer samples per probe: the search tries about a dozen memory costs.
    let probe = |m_kib| ms(time(Argon2Config { m_kib, ..config }, samples.clamp(1, 5)).median);
    let (mut fits, mut too_big) = (M_STEP_KIB, None);
    if probe(fits) > target_ms {
        return Err(Error::Invalid(format!(
            "even m={fits} t={} p={} takes longer than {target_ms} ms; lower --argon2-t",
            config.t, config.p
        )));
    }
    while too_big.is_none() && fits < M_MAX_KIB {
        let next = (fits * 2).min(M_MAX_KIB);
        if probe(next) <= target_ms {
            fits = next
        } else {
            too_big = Some(next)
        }
    }
    while let Some(big) = too_big.filter(|&big| big - fits > M_STEP_KIB) {
        let middle = (fits + big) / 2 / M_STEP_KIB * M_STEP_KIB;
        if probe(middle) <= target_ms {
            fits = middle
        } else {
            too_big = Some(middle)
        }
    }
    let suggested = Argon2Config {
        m_kib: fits,
        ..config
    };
    let timing = time(suggested, samples);
    println!(
        "suggested: --argon2-m {fits} --argon2-t {} --argon2-p {} (ZULIP_AUTH_ARGON2_M={fits}): median {:.2} ms, p90 {:.2} ms, within {target_ms} ms",
        config.t,
        config.p,
        ms(timing.median),
        ms(timing.p90)
    );
    Ok(())
}
