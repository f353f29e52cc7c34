//! Options that weaken security. Each exists for tests and development only; grep for
//! `danger` in review.

use crate::password::PasswordConfig;

/// Argon2id parameters below the OWASP minimum (e.g. `m = 64 KiB, t = 1`) so that test
/// suites run fast. Never use in production: hashes made with these parameters are
/// cheap to brute-force. Logins with a stronger configuration later upgrade them
/// ([`Verification::Match::needs_rehash`](crate::password::Verification)).
#[must_use]
pub fn weak_password_params(
    config: PasswordConfig,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
) -> PasswordConfig {
    config.unchecked_params(m_cost_kib, t_cost, p_cost)
}
