//! Risk limits (grant-policy's [`RiskGuard`]): `GET/PUT /api/risk` and
//! `PUT /api/accounts/{id}/live-trading`, and the exact decimal amounts they use.
//!
//! Money is integer **minor units of 1e-8 of the quote currency** (the paper venue's
//! precision): `"1500.5"` is `150_050_000_000`. Amounts travel as decimal strings with at
//! most 8 fractional digits (no sign, no exponent, no floating point anywhere). An
//! order's notional is `amount * price`, rounded up to the 8th place.
//!
//! The limits are the account owner's, whoever trades the account (the owner, a grantee
//! or a copy-trading strategy): the order maximum, the daily cap over all of the owner's
//! accounts, and a live-trading switch per account (off by default: orders are dry runs).
//! Every order goes through the guard: `create_order` (module `exchange`) and copy
//! trading (module `copy_trading`).

use std::sync::Arc;

use auth_core::http::Authenticated;
use axum::Json;
use axum::extract::{FromRequest as _, Path, Request, State};
use axum::http::StatusCode;
use grant_policy::store::RiskStore;
use grant_policy::{CredentialsOnFile, Level, Notional, RiskError, RiskGuard, RiskLimits};
use serde_json::{Value, json};

use super::Shared;
use super::accounts::{account_id, user_id};
use super::body::Body;
use super::error::ApiError;
use crate::db::Db;

/// Minor units per whole unit of the quote currency.
const SCALE: u64 = 100_000_000;
/// Fractional digits of an amount.
const PLACES: usize = 8;
/// Longest decimal string accepted.
pub(crate) const MAX_DECIMAL: usize = 32;

/// The risk guard over the service database (grant-policy's risk tables).
pub(crate) fn guard(
    db: &Db,
    grants: Arc<dyn grant_policy::store::GrantStore>,
    audit: Arc<dyn grant_policy::AuditSink>,
) -> RiskGuard {
    let store: Arc<dyn RiskStore> = match db {
        #[cfg(feature = "sqlite")]
        Db::Sqlite(pool) => Arc::new(grant_policy::store::SqliteStore::new(pool.clone())),
        #[cfg(feature = "postgres")]
        Db::Postgres(pool) => Arc::new(grant_policy::store::PgStore::new(pool.clone())),
    };
    RiskGuard::builder(store, grants).audit(audit).build()
}

/// Parses a non-negative decimal string (`"12"`, `"0.5"`, `"1500.12345678"`) into minor
/// units; `None` for anything else (a sign, an exponent, more than 8 places, spaces,
/// above `i64::MAX` minor units). Never panics.
pub(crate) fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > MAX_DECIMAL {
        return None;
    }
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.is_empty()
        || (text.contains('.') && frac.is_empty())
        || frac.len() > PLACES
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut units: u64 = 0;
    for b in int.bytes() {
        units = units.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    let mut fraction: u64 = 0;
    for b in frac.bytes() {
        fraction = fraction * 10 + u64::from(b - b'0');
    }
    for _ in frac.len()..PLACES {
        fraction *= 10;
    }
    let total = units.checked_mul(SCALE)?.checked_add(fraction)?;
    (total <= i64::MAX.unsigned_abs()).then_some(total)
}

/// Minor units as a decimal string (no trailing zeros): `150_050_000_000` is `"1500.5"`.
pub(crate) fn render_decimal(minor: u64) -> String {
    let frac = format!("{:08}", minor % SCALE);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{}", minor / SCALE)
    } else {
        format!("{}.{frac}", minor / SCALE)
    }
}

/// `amount * price` in minor units, rounded up; `None` on overflow or above
/// [`Notional::MAX`].
pub(crate) fn notional(amount: u64, price: u64) -> Option<Notional> {
    let product = u128::from(amount).checked_mul(u128::from(price))?;
    let scale = u128::from(SCALE);
    let rounded = product.checked_add(scale - 1)? / scale;
    Notional::from_minor_units(u64::try_from(rounded).ok()?).ok()
}

fn risk_error(e: &RiskError) -> ApiError {
    match e {
        RiskError::NotFound => ApiError::NOT_FOUND,
        RiskError::NoProfile => ApiError::Code(StatusCode::CONFLICT, "no_risk_limits"),
        RiskError::NoCredentials => ApiError::Code(StatusCode::CONFLICT, "no_credentials"),
        _ => ApiError::UNAVAILABLE,
    }
}

async fn limits_json(state: &Shared, user: &grant_policy::UserId) -> Result<Value, ApiError> {
    let limits = state.risk.limits(user).await.map_err(|e| risk_error(&e))?;
    let usage = state
        .risk
        .usage_today(user)
        .await
        .map_err(|e| risk_error(&e))?;
    Ok(json!({
        "max_order_notional": limits.map(|l| render_decimal(l.max_order_notional.minor_units())),
        "daily_cap": limits.map(|l| render_decimal(l.daily_cap.minor_units())),
        "used_today": render_decimal(usage.used.minor_units()),
        "reserved_today": render_decimal(usage.reserved.minor_units()),
    }))
}

/// `GET /api/risk` (`read`): the caller's limits (`null` when never set: every order on
/// the caller's accounts is a dry run) and today's usage, as decimal strings.
#[utoipa::path(
    get, operation_id = "risk_get", path = "/api/risk", tag = "risk",
    responses((status = 200, description = "The caller's limits and today's usage.", body = super::openapi::RiskLimits))
)]
pub(crate) async fn get(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let user = user_id(principal.user_id())?;
    Ok(Json(limits_json(&state, &user).await?))
}

/// `PUT /api/risk {max_order_notional, daily_cap}` (interactive + step-up): sets the
/// caller's limits, which govern every order on the caller's accounts whoever places it;
/// 200 with the `GET` shape. Positive decimal strings (400 naming the field otherwise).
#[utoipa::path(
    put, operation_id = "risk_put", path = "/api/risk", tag = "risk",
    request_body = super::openapi::RiskLimitsRequest,
    responses(
        (status = 200, description = "The limits as stored, in the `GET` shape.", body = super::openapi::RiskLimits),
        (status = 403, description = "`{\"error\": \"mfa_required\"}` (step-up)."),
    )
)]
pub(crate) async fn put(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let max_order = body.positive_decimal("max_order_notional")?;
    let daily_cap = body.positive_decimal("daily_cap")?;
    state.step_up(&principal).await?;
    let user = user_id(principal.user_id())?;
    let limits = RiskLimits {
        max_order_notional: Notional::from_minor_units(max_order)
            .map_err(|_| ApiError::Field("max_order_notional"))?,
        daily_cap: Notional::from_minor_units(daily_cap)
            .map_err(|_| ApiError::Field("daily_cap"))?,
    };
    state
        .risk
        .set_limits(&user, limits)
        .await
        .map_err(|e| risk_error(&e))?;
    Ok(Json(limits_json(&state, &user).await?))
}

/// `PUT /api/accounts/{id}/live-trading {enabled}` (interactive; step-up to enable): the
/// account's live-trading switch. Owner only (anyone else 404, before the body is read
/// for the decision); enabling needs limits (409 `no_risk_limits`), a credential that
/// opens (409 `no_credentials`) and that the venue accepts for a balance read (409
/// `credentials_rejected`; 503 when the venue cannot be reached). Turning it off needs
/// nothing and takes effect for the next order. 200 `{account_id, live_trading}`.
#[utoipa::path(
    put, operation_id = "risk_live_trading", path = "/api/accounts/{id}/live-trading", tag = "accounts",
    params(("id" = String, Path, description = "The caller's account.")),
    request_body = super::openapi::LiveTradingRequest,
    responses(
        (status = 200, description = "The switch as stored.", body = super::openapi::LiveTrading),
        (status = 403, description = "`{\"error\": \"mfa_required\"}` (step-up, to enable)."),
        (status = 404, description = "Not the caller's own account (empty body)."),
        (status = 409, description = "`{\"error\": code}`: `no_risk_limits`, `no_credentials`, `credentials_rejected`.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn live_trading(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let owner = user_id(principal.user_id())?;
    let account = account_id(&id)?;
    match state.grants.owner(&account).await {
        Ok(Some(o)) if o == owner => {}
        Ok(_) => return Err(ApiError::NOT_FOUND),
        Err(_) => return Err(ApiError::UNAVAILABLE),
    }
    let enabled = Body::from_request(request, &state).await?.bool("enabled")?;
    if enabled {
        state.step_up(&principal).await?;
        // On file means: the sealed credential is there and opens (fetched at read level
        // for the owner, through the cache, with the policy's permit for a balance read).
        let permit = state
            .policy
            .authorize(&owner, &account, grant_policy::Operation::Balance, None)
            .await
            .map_err(|reason| ApiError::from_status(reason.status()))?;
        let on_file = match state.cache.get_or_fetch(permit, Level::Read).await {
            Ok(credential) => {
                // And the venue accepts it: one balance read with it.
                let adapter = state.adapter_for(account.as_str()).await?;
                let checked = adapter
                    .call(
                        &credential,
                        grant_policy::Operation::Balance,
                        &serde_json::Map::new(),
                    )
                    .await;
                drop(credential);
                match checked {
                    Ok(_) => CredentialsOnFile::Present,
                    Err(crate::exchange::ExchangeError::Unavailable) => {
                        return Err(ApiError::UNAVAILABLE);
                    }
                    Err(e) => {
                        tracing::info!(code = e.code(), account_id = %account, "live trading refused: the venue refused the credential");
                        return Err(ApiError::Code(StatusCode::CONFLICT, "credentials_rejected"));
                    }
                }
            }
            Err(e) if e.status() == StatusCode::SERVICE_UNAVAILABLE => {
                return Err(ApiError::UNAVAILABLE);
            }
            // Sealed under a key this service does not hold: its fault, not "absent".
            Err(e @ cred_cache::FetchError::Misconfigured) => return Err(e.into()),
            Err(_) => CredentialsOnFile::Absent,
        };
        state
            .risk
            .enable_live_trading(&owner, &account, on_file)
            .await
            .map_err(|e| risk_error(&e))?;
    } else {
        state
            .risk
            .disable_live_trading(&owner, &account)
            .await
            .map_err(|e| risk_error(&e))?;
    }
    Ok(Json(
        json!({ "account_id": account.as_str(), "live_trading": enabled }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly_and_refuse_junk() {
        assert_eq!(parse_decimal("1"), Some(SCALE));
        assert_eq!(parse_decimal("1500.5"), Some(150_050_000_000));
        assert_eq!(parse_decimal("0.00000001"), Some(1));
        assert_eq!(parse_decimal("0"), Some(0));
        for bad in [
            "",
            ".5",
            "1.",
            "-1",
            "+1",
            "1e3",
            " 1",
            "1 ",
            "0.000000001",
            "1,5",
            "١",
            "92233720368.54775808",
            "99999999999999999999",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad}");
        }
        assert_eq!(
            parse_decimal("92233720368.54775807"),
            Some(i64::MAX.unsigned_abs())
        );
        for v in [0, 1, SCALE, 150_050_000_000, 123_456_789] {
            assert_eq!(parse_decimal(&render_decimal(v)), Some(v));
        }
    }

    #[test]
    fn notional_rounds_up_and_never_overflows() {
        // 0.5 BTC at 50000: 25000.
        assert_eq!(
            notional(SCALE / 2, 50_000 * SCALE).map(Notional::minor_units),
            Some(25_000 * SCALE)
        );
        // 1e-8 * 1e-8 rounds up to one minor unit, never to zero.
        assert_eq!(notional(1, 1).map(Notional::minor_units), Some(1));
        assert_eq!(notional(u64::MAX, u64::MAX), None);
        assert_eq!(notional(i64::MAX.unsigned_abs(), 2 * SCALE), None);
    }
}
