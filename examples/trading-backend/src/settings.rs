//! Every configuration variable of `serve` as a clap argument with `env` support, so that
//! `trading-backend serve --help` lists them all (each also accepted as a `--flag`,
//! which wins over the environment). The values are checked by `config.rs`, not here.
//!
//! Secrets (marked `secret` below) are refused on the command line, where every user of
//! the machine can read them (`/proc/<pid>/cmdline`): give them in the environment or
//! through their `_FILE` variable. `--help` never prints a value from the environment.

/// Declares [`Settings`]: `field => "VARIABLE", "help" [, secret];`.
macro_rules! settings {
    ($($field:ident => $env:literal, $help:literal $(, $secret:ident)?;)*) => {
        /// The configuration of `serve` (README "Configuration").
        #[derive(Default, clap::Args)]
        #[command(next_help_heading = "Configuration (environment variables)")]
        pub struct Settings {
            $(
                #[doc = settings!(@help $help $($secret)?)]
                #[arg(long, env = $env, hide_env_values = true, value_name = "VALUE")]
                $field: Option<String>,
            )*
        }

        impl Settings {
            /// Every variable: its name, its argument id and whether it is a secret.
            pub(crate) const VARS: &'static [(&'static str, &'static str, bool)] =
                &[$(($env, stringify!($field), settings!(@secret $($secret)?))),*];

            /// The variables given (on the command line or in the environment).
            pub(crate) fn values(&self) -> Vec<(&'static str, &str)> {
                let mut given = Vec::new();
                $(
                    if let Some(value) = &self.$field {
                        given.push(($env, value.as_str()));
                    }
                )*
                given
            }
        }

        /// The values (secrets among them) are wiped when the settings are dropped.
        impl Drop for Settings {
            fn drop(&mut self) {
                $(
                    if let Some(value) = &mut self.$field {
                        zeroize::Zeroize::zeroize(value);
                    }
                )*
            }
        }
    };
    (@help $help:literal secret) => {
        concat!($help, " (a secret: environment or its _FILE only)")
    };
    (@help $help:literal) => { $help };
    (@secret secret) => { true };
    (@secret) => { false };
}

settings! {
    listen_addr => "LISTEN_ADDR", "Listen address, ip:port [default: 127.0.0.1:8080]";
    metrics_addr => "METRICS_ADDR", "Second listener serving only GET /metrics, ip:port [default: none]";
    strongroom_data_dir => "STRONGROOM_DATA_DIR", "Data directory: SQLite file, development key, rewrap cursor [default: ./data]";
    database_url => "DATABASE_URL", "postgres://... (feature postgres) or sqlite://<path> [default: SQLite in the data directory]", secret;
    database_url_file => "DATABASE_URL_FILE", "File holding DATABASE_URL";
    strongroom_env => "STRONGROOM_ENV", "development or production (production refuses the development key, plain-http SSO, weak secrets) [default: development]";
    strongroom_master_key => "STRONGROOM_MASTER_KEY", "Master key, 64 hex or 44 base64 characters (gen-master-key) [default: a generated development key]", secret;
    strongroom_master_key_file => "STRONGROOM_MASTER_KEY_FILE", "File holding STRONGROOM_MASTER_KEY";
    strongroom_master_key_version => "STRONGROOM_MASTER_KEY_VERSION", "Version of the primary master key [default: 1]";
    strongroom_master_keys_old => "STRONGROOM_MASTER_KEYS_OLD", "Decrypt-only master keys, version:key,...", secret;
    strongroom_master_keys_old_file => "STRONGROOM_MASTER_KEYS_OLD_FILE", "File holding STRONGROOM_MASTER_KEYS_OLD";
    strongroom_master_key_min_version => "STRONGROOM_MASTER_KEY_MIN_VERSION", "Lowest master-key version still accepted";
    strongroom_kek => "STRONGROOM_KEK", "Key-encryption backend sealing new values: local, transit, awskms, pkcs11 [default: local]";
    strongroom_kek_decrypt_only => "STRONGROOM_KEK_DECRYPT_ONLY", "Further backends that only open old values, comma separated";
    vault_addr => "VAULT_ADDR", "Transit: OpenBao or Vault address (https; http only to loopback)";
    vault_token => "VAULT_TOKEN", "Transit: token", secret;
    vault_token_file => "VAULT_TOKEN_FILE", "Transit: file holding the token";
    vault_cacert => "VAULT_CACERT", "Transit: CA bundle (PEM) [default: system roots]";
    vault_namespace => "VAULT_NAMESPACE", "Transit: namespace";
    strongroom_transit_key => "STRONGROOM_TRANSIT_KEY", "Transit: key name";
    strongroom_transit_mount => "STRONGROOM_TRANSIT_MOUNT", "Transit: mount [default: transit]";
    strongroom_transit_role_id => "STRONGROOM_TRANSIT_ROLE_ID", "Transit: AppRole role id";
    strongroom_transit_secret_id => "STRONGROOM_TRANSIT_SECRET_ID", "Transit: AppRole secret id", secret;
    strongroom_transit_secret_id_file => "STRONGROOM_TRANSIT_SECRET_ID_FILE", "Transit: file holding the AppRole secret id";
    strongroom_transit_approle_mount => "STRONGROOM_TRANSIT_APPROLE_MOUNT", "Transit: AppRole mount [default: approle]";
    aws_region => "AWS_REGION", "AWS KMS: region (credentials from the standard AWS chain)";
    aws_endpoint_url => "AWS_ENDPOINT_URL", "AWS KMS: endpoint (a VPC endpoint or a local server)";
    strongroom_kms_key_id => "STRONGROOM_KMS_KEY_ID", "AWS KMS: key id, ARN or alias";
    strongroom_kms_key_ids_old => "STRONGROOM_KMS_KEY_IDS_OLD", "AWS KMS: decrypt-only keys, comma separated";
    strongroom_pkcs11_module => "STRONGROOM_PKCS11_MODULE", "PKCS#11: module (.so)";
    strongroom_pkcs11_token_label => "STRONGROOM_PKCS11_TOKEN_LABEL", "PKCS#11: token label";
    strongroom_pkcs11_pin => "STRONGROOM_PKCS11_PIN", "PKCS#11: user PIN", secret;
    strongroom_pkcs11_pin_file => "STRONGROOM_PKCS11_PIN_FILE", "PKCS#11: file holding the user PIN";
    strongroom_pkcs11_key_label => "STRONGROOM_PKCS11_KEY_LABEL", "PKCS#11: label of the AES-256 key";
    api_token => "API_TOKEN", "Bootstrap server-to-server bearer token, at least 32 visible ASCII characters", secret;
    api_token_file => "API_TOKEN_FILE", "File holding API_TOKEN";
    internal_secret => "INTERNAL_SECRET", "Secret for X-Internal-Secret on /internal/*, at least 32 characters", secret;
    internal_secret_file => "INTERNAL_SECRET_FILE", "File holding INTERNAL_SECRET";
    sso_issuer => "SSO_ISSUER", "SSO: issuer (iss)";
    sso_jwks_url => "SSO_JWKS_URL", "SSO: JWKS URL (https)";
    sso_audience => "SSO_AUDIENCE", "SSO: audience (aud)";
    sso_discovery => "SSO_DISCOVERY", "SSO: 1 to discover the JWKS URL from the issuer (OpenID Connect Discovery)";
    sso_max_token_lifetime_secs => "SSO_MAX_TOKEN_LIFETIME_SECS", "SSO: longest token lifetime, seconds [default: 86400]";
    sso_typ => "SSO_TYP", "SSO: required JWT typ (at+jwt for RFC 9068)";
    sso_azp => "SSO_AZP", "SSO: accepted azp values, comma separated";
    sso_jwks_cooldown_secs => "SSO_JWKS_COOLDOWN_SECS", "SSO: least seconds between two JWKS fetches, 1-3600 [default: 30]";
    sso_danger_allow_http => "SSO_DANGER_ALLOW_HTTP", "DANGEROUS, development only: 1 accepts a plain-http JWKS";
    sso_algorithms => "SSO_ALGORITHMS", "SSO: accepted JWS algorithms [default: RS256]";
    registration_open => "REGISTRATION_OPEN", "true opens POST /api/auth/register [default: false]";
    ws_recheck_secs => "WS_RECHECK_SECS", "Seconds between re-checks of a WebSocket's credential, 1-300 [default: 5]";
    strongroom_cookie_sessions => "STRONGROOM_COOKIE_SESSIONS", "1: browser sessions in a __Host- cookie";
    strongroom_allowed_origins => "STRONGROOM_ALLOWED_ORIGINS", "Origins of the browser front end, comma separated";
    strongroom_cookie_samesite => "STRONGROOM_COOKIE_SAMESITE", "lax or strict [default: lax]";
    strongroom_bearer_challenge => "STRONGROOM_BEARER_CHALLENGE", "1: RFC 6750 answers (401 invalid_token)";
    strongroom_step_up_secs => "STRONGROOM_STEP_UP_SECS", "How recent a second-factor check must be, 30-3600 [default: 300]";
    redis_url => "REDIS_URL", "redis:// or rediss://: shared limits, login throttle, cache invalidation", secret;
    redis_url_file => "REDIS_URL_FILE", "File holding REDIS_URL";
    strongroom_rate_limits => "STRONGROOM_RATE_LIMITS", "1 or 0: the request limits [default: 1]";
    strongroom_rate_limit_principal => "STRONGROOM_RATE_LIMIT_PRINCIPAL", "Per-principal limit, requests/seconds [default: 600/60]";
    strongroom_rate_limit_account => "STRONGROOM_RATE_LIMIT_ACCOUNT", "Per-account limit, requests/seconds [default: 120/60]";
    strongroom_rate_limit_address => "STRONGROOM_RATE_LIMIT_ADDRESS", "Per-address limit, requests/seconds [default: 60/60]";
    strongroom_issuer => "STRONGROOM_ISSUER", "Access-token issuer: the public https URL [default: http://127.0.0.1:<port>]";
    strongroom_token_audience => "STRONGROOM_TOKEN_AUDIENCE", "Access-token audience [default: trading-backend]";
    strongroom_access_token_ttl_secs => "STRONGROOM_ACCESS_TOKEN_TTL_SECS", "Access-token lifetime, 60-3600 seconds [default: 900]";
    strongroom_token_alg => "STRONGROOM_TOKEN_ALG", "Signing algorithm of new keys: EdDSA or ES256 [default: EdDSA]";
    strongroom_token_epoch_check => "STRONGROOM_TOKEN_EPOCH_CHECK", "1 or 0: check the user on every access token [default: 1]";
    strongroom_token_key_reload_secs => "STRONGROOM_TOKEN_KEY_RELOAD_SECS", "Signing-key reload period, 1-3600 seconds [default: 60]";
    strongroom_token_hs256_secret => "STRONGROOM_TOKEN_HS256_SECRET", "HS256 mode: shared secret, at least 64 hex characters", secret;
    strongroom_token_hs256_secret_file => "STRONGROOM_TOKEN_HS256_SECRET_FILE", "File holding STRONGROOM_TOKEN_HS256_SECRET";
    strongroom_refresh_absolute_secs => "STRONGROOM_REFRESH_ABSOLUTE_SECS", "Refresh-token family absolute lifetime, seconds [default: 30 days]";
    strongroom_refresh_idle_secs => "STRONGROOM_REFRESH_IDLE_SECS", "Refresh-token family idle lifetime, seconds [default: 7 days]";
    strongroom_webhook_signals_per_min => "STRONGROOM_WEBHOOK_SIGNALS_PER_MIN", "Copy trading: signals per strategy per minute, 1-6000 [default: 60]";
    strongroom_webhook_secret_grace_secs => "STRONGROOM_WEBHOOK_SECRET_GRACE_SECS", "Copy trading: rotated-out secret grace, 0-604800 seconds [default: 86400]";
    strongroom_audit_retention_days => "STRONGROOM_AUDIT_RETENTION_DAYS", "Audit retention in days, 1-36500 [default: keep everything]";
    strongroom_validity_cache_ms => "STRONGROOM_VALIDITY_CACHE_MS", "Session, API key, user and grant lookups cached, 0 (off) to 1000 ms [default: 500]";
    request_timeout_secs => "REQUEST_TIMEOUT_SECS", "Longest request, 1-300 seconds [default: 30]";
    shutdown_grace_secs => "SHUTDOWN_GRACE_SECS", "Drain time after SIGTERM, 0-300 seconds [default: 10]";
    log_format => "LOG_FORMAT", "text or json [default: text]";
    rust_log => "RUST_LOG", "Log filter [default: info]";
}

/// Names the variables given, never their values.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.values().into_iter().map(|(name, _)| name).collect();
        f.debug_struct("Settings").field("given", &names).finish()
    }
}

/// The first secret given as a command-line flag, if any (`matches`: those of `serve`).
pub(crate) fn secret_on_command_line(matches: &clap::ArgMatches) -> Option<&'static str> {
    Settings::VARS
        .iter()
        .filter(|(_, _, secret)| *secret)
        .find(|(_, id, _)| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .map(|(name, _, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_the_service_reads_is_listed() {
        // The service's own variables (config.rs and its siblings) and crypto-envelope's.
        let sources = [
            include_str!("config.rs"),
            include_str!("kek.rs"),
            include_str!("audit.rs"),
        ];
        let mut read = Vec::new();
        for source in sources {
            for line in source.lines() {
                let line = line.trim();
                if line.starts_with("pub(crate) const ENV_")
                    && let Some(name) = line.split('"').nth(1)
                {
                    read.push(name.to_owned());
                }
            }
        }
        assert!(read.len() > 40, "{read:?}");
        for name in read.iter().map(String::as_str).chain([
            crypto_envelope::backend::local::ENV_MASTER_KEY,
            crypto_envelope::backend::transit::ENV_SECRET_ID_FILE,
        ]) {
            assert!(
                Settings::VARS.iter().any(|(v, _, _)| *v == name),
                "{name} is read but not listed in Settings"
            );
        }
        for (var, file_var) in crate::config::FILE_VARS {
            for name in [var, file_var] {
                assert!(Settings::VARS.iter().any(|(v, _, _)| *v == name), "{name}");
            }
            // The value itself is a secret; its file's path is not.
            assert!(
                Settings::VARS.iter().any(|(v, _, s)| *v == var && *s),
                "{var}"
            );
        }
    }

    #[test]
    fn debug_names_the_variables_and_never_a_value() {
        let mut settings = Settings::default();
        settings.api_token = Some("settings-canary-token-value".into());
        let printed = format!("{settings:?}");
        assert!(printed.contains("API_TOKEN"), "{printed}");
        assert!(!printed.contains("canary"), "{printed}");
    }
}
